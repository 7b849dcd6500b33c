// alt-session, emulated from its documentation (lib/emulated/alt-session.mjs),
// through a sessproxy started with only -preset alt-session
// (integration/node_presets_test.go): the flow of lib/flow.mjs on one hash
// per session at sess:<id>, then the documented edge cases, each checked in
// the upstream.
import { describe, it, before, after } from "node:test";
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { proxy, connectUpstream } from "../lib/env.mjs";
import { startAltApp, user } from "../lib/app.mjs";
import { sessionFlow, assertTTL, assertTombstone, tombstoneError } from "../lib/flow.mjs";
import { AltSessionStore } from "../lib/emulated/alt-session.mjs";

const ttiMs = 300_000; // tti's default, and the preset's ttl.idle
const redis = { host: proxy.host, port: proxy.port };

describe("alt-session (emulated) through sessproxy -preset alt-session", () => {
  let upstream;
  before(async () => {
    upstream = await connectUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  it("Express: login, read, touch, logout, a late write", async (t) => {
    const app = await startAltApp({ redis, session: { dbIndex: 0, tti: 300, prefix: "sess" } });
    t.after(() => app.close());
    const raw = (args) => app.store.client.sendCommand(args);
    await sessionFlow(upstream, app, {
      key: (sid) => `sess:${sid}`,
      storedUser: async (key) => JSON.parse(await upstream.hGet(key, "user")),
      ttlMs: ttiMs,
      afterLogin: async (key) => {
        assert.equal(await upstream.type(key), "hash");
        assert.deepEqual(await upstream.hKeys(key), ["user"]);
      },
      proxyRead: (key) => raw(["HGET", key, "user"]),
      lateWrites: (sid) => [
        () => app.store.session(sid).set("user", JSON.stringify(user)),
        () => app.store.session(sid).remove("user"),
      ],
    });
  });

  it("every access renews the idle timeout (tti)", async (t) => {
    const store = await AltSessionStore.connect(redis, {});
    t.after(() => store.close());
    const s = store.session(randomUUID());
    const key = `sess:${s.id}`;
    await s.set("a", "1");
    await s.set("b", "2");
    assertTTL(await upstream.pTTL(key), ttiMs, "after set");
    const accesses = [
      ["get", () => s.get("a"), "1"],
      ["mget", () => s.mget(["a", "b", "c"]), { a: "1", b: "2", c: null }],
      ["remove", () => s.remove("b"), undefined],
      ["set", () => s.set("b", "3"), undefined],
    ];
    for (const [name, access, want] of accesses) {
      assert.equal(await upstream.pExpire(key, 5_000), 1);
      assert.deepEqual(await access(), want, name);
      assertTTL(await upstream.pTTL(key), ttiMs, `after ${name}`);
    }
    // The README's callbacks.
    const got = await new Promise((resolve, reject) => s.get("b", (err, v) => (err ? reject(err) : resolve(v))));
    assert.equal(got, "3");
    // Removing every field empties the session: the key is gone, with no
    // tombstone (it was not destroyed), and writable again.
    await s.remove(["a", "b"]);
    assert.equal(await upstream.exists(key), 0);
    await s.set("a", "again");
    assert.equal(await upstream.hGet(key, "a"), "again");
  });

  it("a tti other than the preset's: ttl.idle decides, EXPIRE's TTL included", async (t) => {
    // The proxy gives every write and every read of a live session ttl.idle,
    // and replaces the TTL of the store's EXPIRE with it too: a store with
    // another tti needs [ttl] idle set to it.
    const store = await AltSessionStore.connect(redis, { tti: 120 });
    t.after(() => store.close());
    const s = store.session(randomUUID());
    const key = `sess:${s.id}`;
    await s.set("a", "1");
    assertTTL(await upstream.pTTL(key), ttiMs, "tti 120 under ttl.idle 300s");
  });

  it("invalidate leaves a tombstone: reads find no session, writes are refused", async (t) => {
    const store = await AltSessionStore.connect(redis, {});
    t.after(() => store.close());
    const s = store.session(randomUUID());
    const key = `sess:${s.id}`;
    await s.set("user", "ada");
    await s.invalidate();
    await assertTombstone(upstream, key, "after invalidate");
    // The EXPIRE after a read is a write to a destroyed session: sessproxy
    // refuses it (Redis would answer 0), and the store reads that as no
    // session.
    await assert.rejects(store.client.expire(key, 300), tombstoneError(s.id));
    assert.equal(await s.get("user"), null);
    assert.deepEqual(await s.mget(["user", "x"]), { user: null, x: null });
    await assert.rejects(s.set("user", "late"), tombstoneError(s.id));
    await assert.rejects(s.remove(["user"]), tombstoneError(s.id));
    await assertTombstone(upstream, key, "after the late writes");
  });

  it("dbIndex: SELECT 0 is answered OK; another database is refused on connect", async () => {
    const store = await AltSessionStore.connect(redis, { dbIndex: 0 });
    await store.close();
    await assert.rejects(AltSessionStore.connect(redis, { dbIndex: 1 }), (err) => {
      assert.equal(err.message, "ERR DB index is out of range: sessproxy serves db 0 only");
      return true;
    });
  });

  it("the cookie: set on the first response, cleared by invalidate", async (t) => {
    const app = await startAltApp({ redis, session: {} });
    t.after(() => app.close());
    let res = await fetch(`${app.url}/login`, { method: "POST" });
    const { sid } = await res.json();
    const set = res.headers.getSetCookie().find((c) => c.startsWith("sid="));
    assert.match(set, new RegExp(`^sid=${sid}; Path=/; HttpOnly`));
    res = await fetch(`${app.url}/logout`, { method: "POST", headers: { cookie: `sid=${sid}` } });
    await res.json();
    assert.match(res.headers.getSetCookie().find((c) => c.startsWith("sid=")), /^sid=; Path=\/; Expires=Thu, 01 Jan 1970/);
  });
});
