// The client configurations under test, each opened the way an app opens
// it, and wrapped in the one shape the tests need: a client connect-redis
// can use, plus raw commands.
import { readFileSync } from "node:fs";
import { createClient } from "redis";
import { Redis } from "ioredis";

function version(pkg) {
  const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")).version;
}

// What each library reports in CLIENT SETINFO on connect.
export const libVersions = {
  "node-redis": version("@redis/client"),
  ioredis: version("ioredis"),
};

// Every client configuration the suite runs. resp is the protocol the
// connection must end up on; mapObjects whether the library hands a map
// reply to the app as an object (RESP3 maps) or as a flat array (RESP2, and
// ioredis's default "legacy" reply mapping).
export const variants = [
  { name: "node-redis v6 default (RESP3)", lib: "node-redis", resp: 3, mapObjects: true, options: {} },
  { name: "node-redis v6 RESP: 2", lib: "node-redis", resp: 2, mapObjects: false, options: { RESP: 2 } },
  { name: "ioredis v6 default (protocol 3)", lib: "ioredis", resp: 3, mapObjects: false, options: {} },
  {
    name: 'ioredis v6 protocol 3, replyMapping: "resp3"',
    lib: "ioredis",
    resp: 3,
    mapObjects: true,
    options: { replyMapping: "resp3" },
  },
  { name: "ioredis v6 protocol: 2", lib: "ioredis", resp: 2, mapObjects: false, options: { protocol: 2 } },
];

// connect opens variant v on addr ({host, port}), with password when given.
// It never retries: a refused handshake fails the test at once.
export async function connect(v, addr, password) {
  return v.lib === "node-redis" ? connectNodeRedis(v, addr, password) : connectIORedis(v, addr, password);
}

async function connectNodeRedis(v, addr, password) {
  const client = createClient({
    socket: { host: addr.host, port: addr.port, reconnectStrategy: false },
    ...(password ? { password } : {}),
    ...v.options,
  });
  client.on("error", () => {}); // errors reach the commands and connect()
  try {
    await client.connect();
  } catch (err) {
    client.destroy();
    throw err;
  }
  return {
    store: client, // connect-redis is written against node-redis
    raw: (args) => client.sendCommand(args),
    close: () => client.close(),
  };
}

async function connectIORedis(v, addr, password) {
  const client = new Redis({
    host: addr.host,
    port: addr.port,
    ...(password ? { password } : {}),
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    ...v.options,
  });
  const failed = new Promise((_, reject) => client.once("error", reject));
  failed.catch(() => {});
  try {
    // connect() resolves on "ready", after the handshake and INFO ready
    // check; a refused handshake surfaces as an "error" event.
    await Promise.race([client.connect(), failed]);
  } catch (err) {
    client.disconnect();
    throw err;
  }
  return {
    store: nodeRedisAPI(client),
    raw: (args) => client.call(...args),
    close: () => client.quit(),
  };
}

// nodeRedisAPI gives an ioredis client the node-redis methods connect-redis
// 10 calls: it is written against node-redis only (its ioredis support
// ended with v8), and apps on ioredis bridge it like this.
export function nodeRedisAPI(io) {
  return {
    get: (key) => io.get(key),
    set: (key, value, opts) =>
      opts?.expiration ? io.set(key, value, opts.expiration.type, opts.expiration.value) : io.set(key, value),
    expire: (key, seconds) => io.expire(key, seconds),
    del: (keys) => io.del(...keys),
    mGet: (keys) => io.mget(...keys),
    scanIterator: ({ MATCH, COUNT }) => io.scanStream({ match: MATCH, count: COUNT })[Symbol.asyncIterator](),
  };
}
