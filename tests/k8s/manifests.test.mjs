// Checks k8s/ as far as this machine can: it renders, every object is valid
// against the Kubernetes schemas, it is secure by default, and it agrees with
// the real binaries (run with the rendered args and ConfigMap, probed as
// kubelet would probe them). Also checks the Dockerfiles.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
// groupsvc runs as a StatefulSet (one pod a shard), the edges as a Deployment.
const workload = (name) => find("StatefulSet", name) ?? find("Deployment", name);
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
  for (const want of ["Namespace/chat", "StatefulSet/groupsvc", "Service/groupsvc",
                      "Service/groupsvc-shards", "PodDisruptionBudget/groupsvc", "Deployment/edge",
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
  const badProbe = structuredClone(workload("groupsvc"));
  container(badProbe).readinessProbe.grpc.port = "grpc";
  await assert.rejects(async () => (await model(badProbe)).validate());
});

test("pods are non-root, read-only, unprivileged and bounded", () => {
  for (const name of ["groupsvc", "edge"]) {
    const d = workload(name);
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
  const groupsvc = workload("groupsvc");
  const edge = find("Deployment", "edge");
  // Shards: started together (their state is soft), rolled and disrupted one at a time.
  assert.equal(groupsvc.kind, "StatefulSet");
  assert.ok(groupsvc.spec.replicas >= 2);
  assert.equal(groupsvc.spec.podManagementPolicy, "Parallel");
  assert.equal(groupsvc.spec.updateStrategy.type, "RollingUpdate");
  const headless = find("Service", groupsvc.spec.serviceName);
  assert.ok(headless, `the StatefulSet's Service ${groupsvc.spec.serviceName}`);
  assert.equal(headless.spec.clusterIP, "None");
  assert.equal(headless.spec.publishNotReadyAddresses, true);
  assert.deepEqual(headless.spec.selector, groupsvc.spec.selector.matchLabels);
  const shardBudget = find("PodDisruptionBudget", "groupsvc");
  assert.deepEqual(shardBudget.spec.selector.matchLabels, groupsvc.spec.selector.matchLabels);
  assert.equal(shardBudget.spec.maxUnavailable, 1);
  assert.ok(edge.spec.replicas >= 2);
  const g = container(groupsvc);
  // kubelet's gRPC probes cannot speak TLS: they ask the plaintext health port.
  assert.equal(g.readinessProbe.grpc.port, portNamed(g, "health"));
  assert.equal(g.livenessProbe.grpc.port, portNamed(g, "health"));
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
  // Edges, and the other shards (forwarded calls); no one else.
  assert.deepEqual(grpcRule.from, [{ podSelector: { matchLabels: edge.spec.selector.matchLabels } },
                                   { podSelector: { matchLabels: groupsvc.spec.selector.matchLabels } }]);
  for (const rule of policy.spec.ingress.filter((r) => !r.from)) {
    assert.ok(rule.ports.every((p) => p.port !== "grpc"), "grpc open to all");
  }
  for (const [svc, owner] of [["groupsvc", "groupsvc"], ["groupsvc-shards", "groupsvc"], ["edge", "edge"]]) {
    const s = find("Service", svc);
    const c = container(workload(owner));
    for (const p of s.spec.ports) assert.ok(portNamed(c, p.targetPort), `${svc} ${p.targetPort}`);
  }
});

// Every shard's address through the headless Service, in ordinal order, as
// groupsvc's --shards and the edges' --groupsvc must both list them.
function shardList(groupsvc) {
  const headless = find("Service", groupsvc.spec.serviceName);
  const port = headless.spec.ports.find((p) => p.name === "grpc").port;
  return Array.from({ length: groupsvc.spec.replicas },
                    (_, i) => `${groupsvc.metadata.name}-${i}.${headless.metadata.name}:${port}`).join(",");
}

function checkShards(groupsvc, data) {
  const want = shardList(groupsvc);
  assert.equal(flag(data["groupsvc.flags"], "shards"), want, "groupsvc --shards lists every pod");
  assert.equal(flag(data["edge.flags"], "groupsvc"), want, "the edges' --groupsvc is groupsvc's --shards");
  assert.equal(flag(data["groupsvc.flags"], "shard_index"), "auto", "each pod's index is its ordinal");
  const port = Number(want.split(",")[0].split(":")[1]);
  assert.equal(port, portNamed(container(groupsvc), "grpc"));
}

test("the shard list in both flag files is the StatefulSet's pods, in order", () => {
  checkShards(workload("groupsvc"), flagsData());
});

test("the shard check catches a list that disagrees with the replicas or the other file", () => {
  const data = flagsData();
  const grown = structuredClone(workload("groupsvc"));
  grown.spec.replicas += 1;
  assert.throws(() => checkShards(grown, data), /--shards lists every pod/);
  const edgeBehind = { ...data, "edge.flags": data["edge.flags"].replace(/^--groupsvc=(.*),[^,]*$/m, "--groupsvc=$1") };
  assert.throws(() => checkShards(workload("groupsvc"), edgeBehind), /--groupsvc is groupsvc's --shards/);
});

// --- Security (issue 12): Secrets for certificates and tokens, and the flags that use them.

// The Secret volumes of a deployment's container: [{ secret, mountPath }].
function secretMounts(deployment) {
  const pod = deployment.spec.template.spec;
  return container(deployment).volumeMounts.flatMap((m) => {
    const volume = pod.volumes.find((v) => v.name === m.name);
    return volume?.secret ? [{ secret: volume.secret.secretName, mountPath: m.mountPath, mount: m, volume }] : [];
  });
}

function flagsData() {
  return objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("chat-flags-")).data;
}

// What each Secret must hold (the files k8s/make-certs.sh writes, and the
// keys cert-manager's Secrets and CSI volumes use).
const secretKeys = {
  "groupsvc-tls": ["ca.crt", "tls.crt", "tls.key"],
  "groupsvc-api-tokens": ["tokens"],
  "edge-tls": ["ca.crt", "tls.crt", "tls.key"],
};
const fileFlags = {
  groupsvc: { tls_cert: "groupsvc-tls/tls.crt", tls_key: "groupsvc-tls/tls.key",
              tls_client_ca: "groupsvc-tls/ca.crt", api_tokens_file: "groupsvc-api-tokens/tokens" },
  edge: { groupsvc_tls_ca: "edge-tls/ca.crt", groupsvc_tls_cert: "edge-tls/tls.crt",
          groupsvc_tls_key: "edge-tls/tls.key" },
};

// Throws unless every certificate and token flag reads a file of a mounted
// Secret, mounted so that its updates reach the files.
function checkSecurity(deployments, data) {
  for (const [svc, flags] of Object.entries(fileFlags)) {
    const d = deployments[svc];
    const mounts = secretMounts(d);
    assert.ok(d.spec.template.spec.securityContext.fsGroup > 0, `${svc}: fsGroup, so the files are readable`);
    for (const m of mounts) {
      assert.equal(m.mount.readOnly, true, `${svc}: ${m.secret} read-only`);
      assert.equal(m.mount.subPath, undefined, `${svc}: ${m.secret} without subPath (updates must reach the files)`);
      assert.equal(m.volume.secret.defaultMode & 0o007, 0, `${svc}: ${m.secret} not world-readable`);
      assert.ok(m.volume.secret.defaultMode & 0o040, `${svc}: ${m.secret} group-readable`);
    }
    for (const [name, want] of Object.entries(flags)) {
      const value = flag(data[`${svc}.flags`], name);
      assert.ok(value, `${svc}: --${name} is set`);
      const [secret, key] = want.split("/");
      const m = mounts.find((x) => x.secret === secret);
      assert.ok(m, `${svc}: Secret ${secret} is mounted`);
      assert.equal(value, `${m.mountPath}/${key}`, `${svc}: --${name} reads ${secret}'s ${key}`);
      assert.ok(secretKeys[secret].includes(key));
    }
  }
  const g = data["groupsvc.flags"];
  assert.equal(Number(flag(g, "health_listen").split(":")[1]), portNamed(container(deployments.groupsvc), "health"));
  assert.ok(Number(flag(g, "api_rate")) > 0 && Number(flag(g, "caller_queued_bytes")) > 0, "per-caller limits set");
  // The edge id is a name the edge-tls certificate carries (*.edge.chat).
  const args = container(deployments.edge).args;
  assert.ok(args.includes("--edge_id=$(POD_NAME).edge.chat"), args.join(" "));
}

const deployed = () => ({ groupsvc: workload("groupsvc"), edge: find("Deployment", "edge") });

test("Secrets hold the certificates and tokens, mounted where the flags point", () => {
  checkSecurity(deployed(), flagsData());
});

test("the security check catches a missing mount, a subPath, or a flag off its Secret", () => {
  const data = flagsData();
  const offSecret = { ...data, "groupsvc.flags": data["groupsvc.flags"].replace(
    "--tls_client_ca=/etc/groupsvc-tls/ca.crt", "--tls_client_ca=/etc/chat/ca.crt") };
  assert.throws(() => checkSecurity(deployed(), offSecret), /tls_client_ca/);
  const unset = { ...data, "edge.flags": data["edge.flags"].replace(/^--groupsvc_tls_cert=.*$/m, "") };
  assert.throws(() => checkSecurity(deployed(), unset), /groupsvc_tls_cert is set/);
  const unmounted = deployed();
  unmounted.edge = structuredClone(unmounted.edge);
  container(unmounted.edge).volumeMounts = container(unmounted.edge).volumeMounts.filter((m) => m.name === "flags");
  assert.throws(() => checkSecurity(unmounted, data), /Secret edge-tls is mounted/);
  const pinned = deployed();
  pinned.groupsvc = structuredClone(pinned.groupsvc);
  container(pinned.groupsvc).volumeMounts.find((m) => m.name === "tls").subPath = "tls.crt";
  assert.throws(() => checkSecurity(pinned, data), /without subPath/);
});

// --- The manifests against the real binaries.

// The ConfigMap's files in a directory, with each Secret's mount path pointing
// at that Secret's files as k8s/make-certs.sh writes them into `certs`.
function flagsDir(certs) {
  const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("chat-flags-"));
  const dir = mkdtempSync(path.join(tmpdir(), "chat-flags-"));
  const mounts = ["groupsvc", "edge"].flatMap((svc) => secretMounts(workload(svc)));
  const data = {};
  for (const [file, text] of Object.entries(config.data)) {
    let local = text;
    for (const m of mounts) local = local.replaceAll(`${m.mountPath}/`, `${certs}/${m.secret}/`);
    data[file] = local;
    writeFileSync(path.join(dir, file), local);
  }
  return { dir, data };
}

// A unary call through @grpc/grpc-js as grpcurl makes it: TLS with the CA,
// `authorization: Bearer <token>` unless token is empty.
function listGroups(port, ca, token) {
  const def = protoLoader.loadSync(path.join(root, "protos/groupsvc/v1/layer.proto"),
                                   { includeDirs: [path.join(root, "protos"), "/usr/include"] });
  const Layer = grpc.loadPackageDefinition(def).groupsvc.v1.ChannelLayer;
  const client = new Layer(`127.0.0.1:${port}`, grpc.credentials.createSsl(ca));
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    client.ListGroups({ namePrefix: "chat_" }, metadata, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      resolve(err ? err.code : 0);
    });
  });
}

function flag(text, name) {
  return text.split("\n").find((l) => l.startsWith(`--${name}=`))?.split("=").slice(1).join("=");
}

// The container's args as kubelet passes them: $(VAR) from env, /etc/chat from the volume.
function argsOf(c, dir, env) {
  return c.args.map((a) => a.replace("/etc/chat", dir).replace(/\$\((\w+)\)/g, (_, v) => env[v]));
}

// The manifests' own ports lie in the kernel's ephemeral range, so a socket another
// test left behind a moment ago may still hold one (an edge draining after SIGTERM keeps
// its connections for up to its --grace, 10 s): a start refused for a busy port is tried
// again for up to 15 s, and if it keeps failing the error says who holds it.
async function startOnManifestPorts(binary, args) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startLogged(binary, args);
    } catch (e) {
      if (!/cannot (listen|serve)/.test(e.message)) throw e;
      if (attempt >= 30) {
        let holders = "";
        try { holders = execFileSync("ss", ["-tanp"], { encoding: "utf8" }); } catch {}
        throw new Error(`${e.message}\nsockets now:\n${holders}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
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
  // The Secrets' contents, as k8s/make-certs.sh makes them for a test cluster.
  const certs = mkdtempSync(path.join(tmpdir(), "chat-certs-"));
  execFileSync(path.join(root, "k8s/make-certs.sh"), [certs], { stdio: "ignore" });
  for (const [secret, keys] of Object.entries(secretKeys)) {
    assert.deepEqual(readdirSync(path.join(certs, secret)).sort(), keys, `make-certs.sh: ${secret}`);
  }
  const { dir, data } = flagsDir(certs);
  const gDeploy = workload("groupsvc");
  const g = container(gDeploy);
  // One shard here (this host's name has no pod ordinal): the pod groupsvc-0
  // of a one-entry list, on the ports the manifest gives every shard.
  writeFileSync(path.join(dir, "groupsvc.flags"), data["groupsvc.flags"]
    .replace(/^--shards=.*$/m, `--shards=127.0.0.1:${portNamed(g, "grpc")}`)
    .replace(/^--shard_index=.*$/m, "--shard_index=0"));
  const groupsvc = await startOnManifestPorts(`${build}/groupsvc/groupsvc`, argsOf(g, dir, {}));
  // It listens where the manifest says.
  assert.match(groupsvc.log(), new RegExp(` port=${portNamed(g, "grpc")} metrics_port=${portNamed(g, "metrics")} health_port=${portNamed(g, "health")}`));
  // Secured as the flags say, nothing left open.
  assert.match(groupsvc.log(), / security tls=on .* attach=client_certificate api=tokens tokens=2 /);
  assert.doesNotMatch(groupsvc.log(), /security_warning/);
  await eventually(async () => (await grpcHealth(g.readinessProbe.grpc.port)) === "SERVING",
                   "groupsvc's gRPC probe answers SERVING");
  const scrape = gDeploy.spec.template.metadata.annotations;
  assert.equal((await fetch(`http://127.0.0.1:${scrape["prometheus.io/port"]}${scrape["prometheus.io/path"]}`)).status, 200);

  // The edge reaches each shard by its pod's name (checked above); here, the one shard.
  const target = flag(data["edge.flags"], "groupsvc");
  const port = portNamed(g, "grpc");
  writeFileSync(path.join(dir, "edge.flags"),
                data["edge.flags"].replace(`--groupsvc=${target}`, `--groupsvc=127.0.0.1:${port}`));
  const eDeploy = find("Deployment", "edge");
  const e = container(eDeploy);
  const edge = await startOnManifestPorts(`${build}/edge/edge`,
                                          argsOf(e, dir, { POD_NAME: "edge-5d8f7b-x2k9q" }));
  assert.match(edge.log(), new RegExp(` port=${portNamed(e, "http")} edge=edge-5d8f7b-x2k9q.edge.chat `));
  const base = `http://127.0.0.1:${probePort(e, e.readinessProbe.httpGet.port)}`;
  await eventually(async () => (await fetch(base + e.readinessProbe.httpGet.path)).status === 200,
                   "edge's readiness probe answers 200 once linked to groupsvc");
  assert.equal((await fetch(base + e.livenessProbe.httpGet.path)).status, 200);
  const edgeScrape = eDeploy.spec.template.metadata.annotations;
  const metrics = await fetch(`http://127.0.0.1:${edgeScrape["prometheus.io/port"]}${edgeScrape["prometheus.io/path"]}`);
  assert.match(await metrics.text(), /\nedge_layer_up 1\n/);
  // The edge attached over mutual TLS with the shared edge-tls certificate.
  assert.match(groupsvc.log(), / edge_attached edge=edge-5d8f7b-x2k9q\.edge\.chat .* identity=certificate/);

  // grpcurl's path: TLS with the CA, and a token from the tokens Secret.
  const ca = readFileSync(path.join(certs, "groupsvc-tls/ca.crt"));
  const operator = readFileSync(path.join(certs, "groupsvc-api-tokens/tokens"), "utf8")
    .split("\n").find((l) => l.startsWith("operator ")).split(" ")[2];
  assert.equal(await listGroups(portNamed(g, "grpc"), ca, operator), 0);
  assert.equal(await listGroups(portNamed(g, "grpc"), ca, ""), grpc.status.UNAUTHENTICATED);
  assert.equal(await listGroups(portNamed(g, "grpc"), ca, "0123456789abcdef0123"), grpc.status.UNAUTHENTICATED);

  // The grace periods cover the drains the flags ask for.
  const seconds = (text) => Number(flag(text, "grace").replace(/s$/, ""));
  assert.ok(gDeploy.spec.template.spec.terminationGracePeriodSeconds > seconds(data["groupsvc.flags"]));
  assert.ok(eDeploy.spec.template.spec.terminationGracePeriodSeconds > seconds(data["edge.flags"]));
  const exited = new Promise((r) => edge.child.on("exit", r));
  edge.child.kill("SIGTERM");
  assert.equal(await exited, 0);
  rmSync(certs, { recursive: true, force: true });
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
    const pod = workload(svc).spec.template.spec.securityContext;
    assert.equal(Number(user[1]), pod.runAsUser, `${svc}: USER matches runAsUser`);
    assert.match(text, new RegExp(`^ENTRYPOINT \\["/usr/local/bin/${svc}"\\]$`, "m"));
    const exposed = text.match(/^EXPOSE (.*)$/m)[1].split(" ").map(Number).sort();
    const ports = container(workload(svc)).ports.map((p) => p.containerPort).sort();
    assert.deepEqual(exposed, ports, `${svc}: EXPOSE matches containerPorts`);
  }
});
