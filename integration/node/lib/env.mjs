// What integration/clients_test.go hands the Node tests: the proxy under
// test and the upstream behind it, which the tests read directly to check
// what the proxy really stored.
import { createClient, createCluster } from "redis";

function required(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: these tests are run by integration/clients_test.go (go test ./integration/ -run 'Test(Standalone|Cluster)/Clients/Node')`);
  }
  return v;
}

function hostPort(addr) {
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

// SESSPROXY_ADDR: the proxy, no password. SESSPROXY_AUTH_ADDR: a second
// proxy on the same upstream with requirepass SESSPROXY_PASSWORD.
export const proxy = hostPort(required("SESSPROXY_ADDR"));
export const authProxy = hostPort(required("SESSPROXY_AUTH_ADDR"));
export const password = required("SESSPROXY_PASSWORD");

// UPSTREAM_MODE is standalone or cluster; UPSTREAM_ADDRS the server, or
// every cluster master, comma-separated.
export const upstreamMode = required("UPSTREAM_MODE");
const upstreamAddrs = required("UPSTREAM_ADDRS").split(",");

// grace is the proxy's tombstone grace (tombstone.grace, 5m by default).
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
