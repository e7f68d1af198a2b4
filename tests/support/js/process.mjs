// Starts one of our binaries for a node test and resolves once it logged its
// "listening ... port=N" line: { child, port, log() }. Every child started is
// killed by stopAll().
import { spawn } from "node:child_process";

const children = [];

export function startLogged(binary, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let log = "";
    const timer = setTimeout(() => reject(new Error(`${binary} did not start:\n${log}`)), 20000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = log.match(/ listening .* port=(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), log: () => log });
      }
    });
    child.on("exit", (code) => reject(new Error(`${binary} exited with ${code}:\n${log}`)));
  });
}

export function stopAll() {
  for (const child of children) child.kill("SIGTERM");
}
