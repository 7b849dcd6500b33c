// node-redis v4 (npm alias redis-4), the client connect-redis 7 and 8 and
// the emulated stores are written against.
import { readFileSync } from "node:fs";
import { createClient } from "redis-4";

// version is an installed package's version (aliases included).
export function version(pkg) {
  const url = new URL(`../node_modules/${pkg}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")).version;
}

// connectRedis4 opens node-redis v4 on addr ({host, port}); it never
// retries. raw sends a command as it is.
export async function connectRedis4(addr) {
  const client = createClient({ socket: { host: addr.host, port: addr.port, reconnectStrategy: false } });
  client.on("error", () => {}); // errors reach the commands and connect()
  await client.connect();
  return {
    client,
    raw: (args) => client.sendCommand(args),
    close: () => client.quit(),
  };
}
