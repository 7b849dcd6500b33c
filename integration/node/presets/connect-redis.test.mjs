// express-session + connect-redis 7, 8 and 10 through a sessproxy started
// with only -preset connect-redis (integration/node_presets_test.go): the
// session flow of lib/flow.mjs, each step checked in the upstream.
// connect-redis 7 and 8 are written against node-redis v4 (their
// scanIterator takes one key at a time, as v4 yields them); 10 against
// node-redis v5 and later, here v6.
import { describe, it, before, after } from "node:test";
import RedisStore7 from "connect-redis-7";
import { RedisStore as RedisStore8 } from "connect-redis-8";
import { RedisStore as RedisStore10 } from "connect-redis";
import { proxy, connectUpstream } from "../lib/env.mjs";
import { connect, variants } from "../lib/clients.mjs";
import { connectRedis4, version } from "../lib/redis4.mjs";
import { startApp } from "../lib/app.mjs";
import { sessionFlow, expressStore, callback } from "../lib/flow.mjs";

const nodeRedis6 = variants.find((v) => v.lib === "node-redis" && v.resp === 3);

const versions = [
  { pkg: "connect-redis-7", Store: RedisStore7, client: "node-redis " + version("redis-4"), open: () => connectRedis4(proxy) },
  { pkg: "connect-redis-8", Store: RedisStore8, client: "node-redis " + version("redis-4"), open: () => connectRedis4(proxy) },
  {
    pkg: "connect-redis",
    Store: RedisStore10,
    client: "node-redis " + version("redis"),
    open: async () => {
      const c = await connect(nodeRedis6, proxy);
      return { client: c.store, raw: c.raw, close: c.close };
    },
  },
];

describe("express-session + connect-redis through sessproxy -preset connect-redis", () => {
  let upstream;
  before(async () => {
    upstream = await connectUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  for (const v of versions) {
    it(`connect-redis ${version(v.pkg)} over ${v.client}`, async (t) => {
      const c = await v.open();
      t.after(() => c.close());
      // The store's defaults: prefix sess:, the preset's.
      const store = new v.Store({ client: c.client });
      const app = await startApp(store);
      t.after(() => app.close());
      await sessionFlow(
        upstream,
        app,
        expressStore(upstream, store, {
          prefix: "sess:",
          raw: c.raw,
          list: {
            ids: () => callback(store, "ids"),
            all: () => callback(store, "all"),
            length: () => callback(store, "length"),
          },
        }),
      );
    });
  }
});
