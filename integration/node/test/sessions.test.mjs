// express-session + connect-redis 10 through sessproxy, once per client
// configuration: login, read, touch, logout, and a late write after the
// logout (lib/flow.mjs). Every step is checked in the upstream, past the
// proxy.
import { describe, it, before, after } from "node:test";
import { RedisStore } from "connect-redis";
import { proxy, connectUpstream } from "../lib/env.mjs";
import { variants, connect } from "../lib/clients.mjs";
import { startApp } from "../lib/app.mjs";
import { sessionFlow, expressStore } from "../lib/flow.mjs";

describe("express-session + connect-redis through sessproxy", () => {
  let upstream;
  before(async () => {
    upstream = await connectUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  for (const v of variants) {
    it(v.name, async (t) => {
      const client = await connect(v, proxy);
      t.after(() => client.close());
      const store = new RedisStore({ client: client.store, prefix: "sess:" });
      const app = await startApp(store);
      t.after(() => app.close());
      await sessionFlow(
        upstream,
        app,
        expressStore(upstream, store, {
          prefix: "sess:",
          raw: client.raw,
          list: { ids: () => store.ids(), all: () => store.all(), length: () => store.length() },
        }),
      );
    });
  }
});
