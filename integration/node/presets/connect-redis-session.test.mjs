// connect-redis-session, emulated from its documentation
// (lib/emulated/connect-redis-session.mjs), through a sessproxy started with
// only -preset connect-redis-session (integration/node_presets_test.go):
// express-session's flow (lib/flow.mjs) at sessions:<id>, then the
// documented edge cases, each checked in the upstream. A second proxy on the
// same upstream adds [ttl] require_expires = true, which ttlSeconds: false
// needs.
import { describe, it, before, after } from "node:test";
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { proxy, proxyAt, connectUpstream, graceMs } from "../lib/env.mjs";
import { connectRedis4 } from "../lib/redis4.mjs";
import { startApp, cookieMaxAgeMs, user } from "../lib/app.mjs";
import { sessionFlow, expressStore, callback, assertTTL, assertTombstone, tombstoneError } from "../lib/flow.mjs";
import { RedisStore } from "../lib/emulated/connect-redis-session.mjs";

const prefix = "sessions:"; // the store's default, and the preset's

// withCookie is a session as express-session hands it to the store, its
// cookie expiring in ms.
function withCookie(ms, extra = {}) {
  return { cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString(), httpOnly: true, path: "/" }, ...extra };
}

const noExpiresError = (err) => {
  assert.equal(err.message, "ERR session refused: its payload has no cookie.expires and the command gives no TTL (ttl.require_expires = true)");
  return true;
};

describe("connect-redis-session (emulated) through sessproxy -preset connect-redis-session", () => {
  let upstream, c;
  before(async () => {
    upstream = await connectUpstream();
    c = await connectRedis4(proxy);
  });
  after(async () => {
    await c?.close();
    await upstream?.close();
  });

  it("express-session: login, read, touch, logout, a late write", async (t) => {
    const store = new RedisStore({ client: c.client });
    assert.equal(store.prefix, prefix);
    const app = await startApp(store);
    t.after(() => app.close());
    await sessionFlow(
      upstream,
      app,
      expressStore(upstream, store, {
        prefix,
        raw: c.raw,
        list: { all: () => store.access.all(), length: () => store.access.length() },
      }),
    );
  });

  it("store.access: get, set, destroy; the tombstone lasts concurrencyGraceSeconds and refuses writes inside it", async () => {
    const store = new RedisStore({ client: c.client });
    assert.equal(store.concurrencyGraceSeconds * 1000, graceMs, "the preset's tombstone.grace is the store's default grace");
    const sid = randomUUID();
    const key = prefix + sid;
    assert.equal(await store.access.get(sid), null);
    await store.access.set(sid, withCookie(120_000, { user }));
    assert.deepEqual(JSON.parse(await upstream.get(key)).user, user);
    assertTTL(await upstream.pTTL(key), 120_000, "set: cookie.expires");
    assert.deepEqual((await store.access.get(sid)).user, user);

    await store.access.destroy(sid);
    await assertTombstone(upstream, key, "after destroy");
    assert.equal(await store.access.get(sid), null);
    // A write inside the grace — a request that read the session before
    // the destroy — is refused, and so is a touch.
    await assert.rejects(store.access.set(sid, withCookie(120_000, { user })), tombstoneError(sid));
    await assert.rejects(callback(store, "touch", sid, withCookie(120_000)), tombstoneError(sid));
    await assertTombstone(upstream, key, "after the writes inside the grace");
  });

  it("ttlSeconds: the TTL of a session without cookie.expires; disableTouch", async () => {
    const store = new RedisStore({ client: c.client, ttlSeconds: 600 });
    const sid = randomUUID();
    const key = prefix + sid;
    await store.access.set(sid, { cookie: { originalMaxAge: null, expires: null }, user });
    assertTTL(await upstream.pTTL(key), 600_000, "set without cookie.expires");

    await store.access.set(sid, withCookie(120_000, { user }));
    const frozen = new RedisStore({ client: c.client, disableTouch: true });
    await callback(frozen, "touch", sid, withCookie(cookieMaxAgeMs));
    assertTTL(await upstream.pTTL(key), 120_000, "disableTouch: touch changes nothing");
    await callback(store, "touch", sid, withCookie(cookieMaxAgeMs));
    assertTTL(await upstream.pTTL(key), cookieMaxAgeMs, "touch");
  });

  it("ttlSeconds: false under ttl.require_expires: a session without cookie.expires is refused", async (t) => {
    const strict = await connectRedis4(proxyAt("SESSPROXY_REQUIRE_EXPIRES_ADDR"));
    t.after(() => strict.close());
    for (const ttlSeconds of [false, 0]) {
      const store = new RedisStore({ client: strict.client, ttlSeconds });
      const sid = randomUUID();
      const key = prefix + sid;
      await assert.rejects(store.access.set(sid, { cookie: { originalMaxAge: null, expires: null }, user }), noExpiresError);
      await assert.rejects(callback(store, "set", sid, { user }), noExpiresError);
      assert.equal(await upstream.exists(key), 0, `ttlSeconds ${ttlSeconds}: a refused session is stored`);
      // With cookie.expires it passes, with that TTL.
      await store.access.set(sid, withCookie(120_000, { user }));
      assertTTL(await upstream.pTTL(key), 120_000, `ttlSeconds ${ttlSeconds}: set with cookie.expires`);
    }
  });

  it("store.access: all, length and clear in SCAN batches of scanCount", async () => {
    const store = new RedisStore({ client: c.client, scanCount: 2 });
    const sids = Array.from({ length: 7 }, () => randomUUID());
    const before = await store.access.length();
    for (const sid of sids) await store.access.set(sid, withCookie(120_000, { user, sid }));
    assert.equal(await store.access.length(), before + sids.length);
    const all = await store.access.all();
    for (const sid of sids) assert.equal(all.find((s) => s.id === sid)?.sid, sid, `all() lacks ${sid}`);

    await store.access.clear();
    assert.equal(await store.access.length(), 0);
    assert.deepEqual(await store.access.all(), []);
    for (const sid of sids) await assertTombstone(upstream, prefix + sid, `after clear: ${sid}`);
  });
});
