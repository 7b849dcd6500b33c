// What the Go tests hand the Node tests: the proxy under test and the
// upstream behind it, which the tests read directly to check what the proxy
// really stored. integration/clients_test.go runs test/ (and adds a proxy
// with requirepass); integration/node_presets_test.go runs presets/, each
// file against a sessproxy binary started with only that framework's preset.
import { createClient, createCluster } from "redis";

function required(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: these tests are run by the Go suite (go test ./integration/ -run 'Test(Standalone|Cluster)/Clients/Node' for test/, -run '^TestPreset' for presets/)`,
    );
  }
  return v;
}

function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

// SESSPROXY_ADDR: the proxy, no password.
export const proxy = hostPort(required("SESSPROXY_ADDR"));

// proxyAt is the address in the environment variable name: a second proxy
// on the same upstream (test/: SESSPROXY_AUTH_ADDR, with requirepass
// SESSPROXY_PASSWORD; presets/: one with another setting).
export function proxyAt(name) {
  return hostPort(required(name));
}

// authEnv is test/'s proxy with requirepass and its password.
export function authEnv() {
  return { authProxy: proxyAt("SESSPROXY_AUTH_ADDR"), password: required("SESSPROXY_PASSWORD") };
}

// UPSTREAM_MODE is standalone or cluster; UPSTREAM_ADDRS the server, or
// every cluster master, comma-separated.
export const upstreamMode = required("UPSTREAM_MODE");
const upstreamAddrs = required("UPSTREAM_ADDRS").split(",");

// grace is the proxy's tombstone grace (tombstone.grace, 5m by default, and
// connect-redis-session's concurrencyGraceSeconds, 300).
export const graceMs = 5 * 60 * 1000;

// connectUpstream opens a node-redis client straight to the upstream,
// bypassing the proxy: a cluster client on a cluster, so every key is read
// from the master that owns its slot.
export async function connectUpstream() {
  let client;
  if (upstreamMode === "cluster") {
    client = createCluster({
      rootNodes: upstreamAddrs.map((a) => ({ socket: hostPort(a) })),
    });
  } else if (upstreamMode === "standalone") {
    client = createClient({ socket: hostPort(upstreamAddrs[0]) });
  } else {
    throw new Error(`UPSTREAM_MODE ${upstreamMode}: want standalone or cluster`);
  }
  client.on("error", (err) => console.error("upstream client:", err));
  await client.connect();
  return client;
}
