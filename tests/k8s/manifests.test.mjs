// Checks k8s/ as far as this machine can: it renders, every object is valid
// against the Kubernetes schemas, it is secure by default, and it agrees with
// the real binaries (run with the rendered args and ConfigMap, probed as
// kubelet would probe them). Also checks the Dockerfiles.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { parseAllDocuments } from "yaml";
import { startLogged, stopAll } from "../support/js/process.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const build = process.env.CHAT_BUILD_DIR ?? path.join(root, "build");
let objects = [];

const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const container = (deployment) => deployment.spec.template.spec.containers[0];
const portNamed = (c, name) => c.ports.find((p) => p.name === name)?.containerPort;
const probePort = (c, port) => (typeof port === "number" ? port : portNamed(c, port));

async function model(o) {
  const group = o.apiVersion.includes("/") ? o.apiVersion : `${o.apiVersion}`;
  const mod = await import(`kubernetes-models/${group}/${o.kind}`);
  return new mod[o.kind](o);
}

before(() => {
  const rendered = execFileSync("kubectl", ["kustomize", path.join(root, "k8s")], { encoding: "utf8" });
  objects = parseAllDocuments(rendered).map((d) => d.toJS()).filter(Boolean);
});

after(() => stopAll());

test("kustomize renders every object into the chat namespace", () => {
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  for (const want of ["Namespace/chat", "Deployment/groupsvc", "Service/groupsvc", "Deployment/edge",
                      "Service/edge", "PodDisruptionBudget/edge",
                      "NetworkPolicy/groupsvc-grpc-from-edges"]) {
    assert.ok(kinds.includes(want), `${want} missing from ${kinds}`);
  }
  assert.ok(objects.some((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("chat-flags-")));
  for (const o of objects.filter((o) => o.kind !== "Namespace")) {
    assert.equal(o.metadata.namespace, "chat", `${o.kind}/${o.metadata.name}`);
  }
});

test("every rendered object validates against the Kubernetes schemas", async () => {
  for (const o of objects) {
    (await model(o)).validate();  // Throws on an invalid field.
  }
});

test("the schema check catches an invalid field type", async () => {
  const broken = structuredClone(find("Deployment", "edge"));
  broken.spec.replicas = "two";
  await assert.rejects(async () => (await model(broken)).validate());
  const badProbe = structuredClone(find("Deployment", "groupsvc"));
  container(badProbe).readinessProbe.grpc.port = "grpc";
  await assert.rejects(async () => (await model(badProbe)).validate());
});

test("pods are non-root, read-only, unprivileged and bounded", () => {
  for (const name of ["groupsvc", "edge"]) {
    const d = find("Deployment", name);
    const pod = d.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true, name);
    assert.ok(pod.securityContext.runAsUser > 0, name);
    assert.equal(pod.automountServiceAccountToken, false, name);
    for (const c of pod.containers) {
      assert.equal(c.securityContext.readOnlyRootFilesystem, true, name);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"], name);
      for (const r of ["cpu", "memory"]) {
        assert.ok(c.resources.requests[r] && c.resources.limits[r], `${name} ${r}`);
      }
    }
    const annotations = d.spec.template.metadata.annotations;
    assert.equal(annotations["prometheus.io/scrape"], "true", name);
    assert.ok(container(d).ports.some((p) => String(p.containerPort) === annotations["prometheus.io/port"]),
              `${name}: the scrape port is a container port`);
  }
});

test("replicas, probes, disruption budget and network policy fit the design", () => {
  const groupsvc = find("Deployment", "groupsvc");
  const edge = find("Deployment", "edge");
  assert.equal(groupsvc.spec.replicas, 1);
  assert.equal(groupsvc.spec.strategy.type, "Recreate");
  assert.ok(edge.spec.replicas >= 2);
  const g = container(groupsvc);
  assert.equal(g.readinessProbe.grpc.port, portNamed(g, "grpc"));
  assert.equal(g.livenessProbe.grpc.port, portNamed(g, "grpc"));
  const e = container(edge);
  assert.equal(e.readinessProbe.httpGet.path, "/readyz");
  assert.equal(e.livenessProbe.httpGet.path, "/healthz");
  assert.equal(probePort(e, e.readinessProbe.httpGet.port), portNamed(e, "http"));
  const pdb = find("PodDisruptionBudget", "edge");
  assert.deepEqual(pdb.spec.selector.matchLabels, edge.spec.selector.matchLabels);
  assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < edge.spec.replicas);
  const policy = find("NetworkPolicy", "groupsvc-grpc-from-edges");
  assert.deepEqual(policy.spec.podSelector.matchLabels, groupsvc.spec.selector.matchLabels);
  const grpcRule = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === "grpc"));
  assert.deepEqual(grpcRule.from, [{ podSelector: { matchLabels: edge.spec.selector.matchLabels } }]);
  for (const rule of policy.spec.ingress.filter((r) => !r.from)) {
    assert.ok(rule.ports.every((p) => p.port !== "grpc"), "grpc open to all");
  }
  for (const svc of ["groupsvc", "edge"]) {
    const s = find("Service", svc);
    const c = container(find("Deployment", svc));
    for (const p of s.spec.ports) assert.ok(portNamed(c, p.targetPort), `${svc} ${p.targetPort}`);
  }
});

// --- The manifests against the real binaries.

function flagsDir() {
  const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("chat-flags-"));
  const dir = mkdtempSync(path.join(tmpdir(), "chat-flags-"));
  for (const [file, text] of Object.entries(config.data)) writeFileSync(path.join(dir, file), text);
  return { dir, data: config.data };
}

function flag(text, name) {
  return text.split("\n").find((l) => l.startsWith(`--${name}=`))?.split("=").slice(1).join("=");
}

// The container's args as kubelet passes them: $(VAR) from env, /etc/chat from the volume.
function argsOf(c, dir, env) {
  return c.args.map((a) => a.replace("/etc/chat", dir).replace(/\$\((\w+)\)/g, (_, v) => env[v]));
}

async function eventually(check, what) {
  for (let i = 0; i < 200; i++) {
    try {
      if (await check()) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`never: ${what}`);
}

function grpcHealth(port) {
  const def = protoLoader.loadSync(path.join(root, "protos/grpc/health/v1/health.proto"), { enums: String });
  const Health = grpc.loadPackageDefinition(def).grpc.health.v1.Health;
  const client = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check({ service: "" }, { deadline: Date.now() + 2000 }, (err, res) => {
      client.close();
      err ? reject(err) : resolve(res.status);
    });
  });
}

test("the binaries run with the manifests' args and answer their probes", async () => {
  const { dir, data } = flagsDir();
  const gDeploy = find("Deployment", "groupsvc");
  const g = container(gDeploy);
  const groupsvc = await startLogged(`${build}/groupsvc/groupsvc`, argsOf(g, dir, {}));
  // It listens where the manifest says.
  assert.match(groupsvc.log(), new RegExp(` port=${portNamed(g, "grpc")} metrics_port=${portNamed(g, "metrics")}`));
  await eventually(async () => (await grpcHealth(g.readinessProbe.grpc.port)) === "SERVING",
                   "groupsvc's gRPC probe answers SERVING");
  const scrape = gDeploy.spec.template.metadata.annotations;
  assert.equal((await fetch(`http://127.0.0.1:${scrape["prometheus.io/port"]}${scrape["prometheus.io/path"]}`)).status, 200);

  // The edge reaches groupsvc through its Service: same name and port as in the flags.
  const target = flag(data["edge.flags"], "groupsvc");
  const [host, port] = target.split(":");
  const svc = find("Service", "groupsvc");
  assert.equal(host, svc.metadata.name);
  assert.equal(Number(port), svc.spec.ports.find((p) => p.name === "grpc").port);
  writeFileSync(path.join(dir, "edge.flags"),
                data["edge.flags"].replace(`--groupsvc=${target}`, `--groupsvc=127.0.0.1:${port}`));
  const eDeploy = find("Deployment", "edge");
  const e = container(eDeploy);
  const edge = await startLogged(`${build}/edge/edge`, argsOf(e, dir, { POD_NAME: "edge-5d8f7b-x2k9q" }));
  assert.match(edge.log(), new RegExp(` port=${portNamed(e, "http")} edge=edge-5d8f7b-x2k9q `));
  const base = `http://127.0.0.1:${probePort(e, e.readinessProbe.httpGet.port)}`;
  await eventually(async () => (await fetch(base + e.readinessProbe.httpGet.path)).status === 200,
                   "edge's readiness probe answers 200 once linked to groupsvc");
  assert.equal((await fetch(base + e.livenessProbe.httpGet.path)).status, 200);
  const edgeScrape = eDeploy.spec.template.metadata.annotations;
  const metrics = await fetch(`http://127.0.0.1:${edgeScrape["prometheus.io/port"]}${edgeScrape["prometheus.io/path"]}`);
  assert.match(await metrics.text(), /\nedge_layer_up 1\n/);

  // The grace periods cover the drains the flags ask for.
  const seconds = (text) => Number(flag(text, "grace").replace(/s$/, ""));
  assert.ok(gDeploy.spec.template.spec.terminationGracePeriodSeconds > seconds(data["groupsvc.flags"]));
  assert.ok(eDeploy.spec.template.spec.terminationGracePeriodSeconds > seconds(data["edge.flags"]));
  const exited = new Promise((r) => edge.child.on("exit", r));
  edge.child.kill("SIGTERM");
  assert.equal(await exited, 0);
});

test("the Dockerfiles copy what exists and build as CI does", () => {
  const setup = readFileSync(path.join(root, "scripts/setup"), "utf8");
  for (const svc of ["groupsvc", "edge"]) {
    const text = readFileSync(path.join(root, svc, "Dockerfile"), "utf8");
    const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim());
    for (const copy of lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
      const sources = copy.split(/\s+/).slice(1, -1);
      for (const s of sources) assert.ok(existsSync(path.join(root, s)), `${svc}: COPY ${s}`);
    }
    const run = lines.filter((l) => l.startsWith("RUN ")).join(" ");
    assert.match(run, /scripts\/setup/, svc);
    assert.match(run, new RegExp(`CHAT_TARGET=${svc} scripts/build build`), svc);
    assert.match(setup, /apt-get install/);
    assert.match(text, /^FROM debian:12 AS build$/m);
    assert.match(text, /^FROM debian:12-slim$/m);
    const user = text.match(/^USER (\d+):(\d+)$/m);
    const pod = find("Deployment", svc).spec.template.spec.securityContext;
    assert.equal(Number(user[1]), pod.runAsUser, `${svc}: USER matches runAsUser`);
    assert.match(text, new RegExp(`^ENTRYPOINT \\["/usr/local/bin/${svc}"\\]$`, "m"));
    const exposed = text.match(/^EXPOSE (.*)$/m)[1].split(" ").map(Number).sort();
    const ports = container(find("Deployment", svc)).ports.map((p) => p.containerPort).sort();
    assert.deepEqual(exposed, ports, `${svc}: EXPOSE matches containerPorts`);
  }
});
