// express-session + connect-redis 10 through sessproxy, once per client
// configuration: login, read, touch, logout, and a late write after the
// logout. Every step is checked in the upstream, past the proxy.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { proxy, connectUpstream, graceMs } from "../lib/env.mjs";
import { variants, connect } from "../lib/clients.mjs";
import { startApp, sessionCookie, cookieMaxAgeMs } from "../lib/app.mjs";

// ttlSlackMs is how far below the TTL it wrote a PTTL may have fallen by
// the time the test reads it (the Go suite's ttlSlack).
const ttlSlackMs = 10_000;

function assertTTL(pttl, wantMs, what) {
  assert.ok(pttl <= wantMs && pttl > wantMs - ttlSlackMs, `${what}: upstream PTTL ${pttl} ms, want ${wantMs} ms (within ${ttlSlackMs} ms below)`);
}

const tombstoneError = (sid) => (err) => {
  assert.equal(err.message, `TOMBSTONE session ${sid} was destroyed`);
  return true;
};

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
      const app = await startApp(client.store);
      t.after(() => app.close());

      // Login creates the session: the upstream holds express-session's JSON
      // at sess:<sid>, with the TTL connect-redis derived from the cookie.
      let res = await fetch(`${app.url}/login`, { method: "POST" });
      assert.equal(res.status, 200);
      const { sid } = await res.json(); // the whole body: the store write is done
      const cookie = sessionCookie(res);
      assert.ok(cookie, "login set no session cookie");
      const key = `sess:${sid}`;
      const stored = JSON.parse(await upstream.get(key));
      assert.deepEqual(stored.user, { name: "alice", role: "user" });
      // (express-session computes originalMaxAge from expires - now: a
      // millisecond may have passed.)
      const maxAge = stored.cookie.originalMaxAge;
      assert.ok(maxAge <= cookieMaxAgeMs && maxAge > cookieMaxAgeMs - 1000, `stored cookie.originalMaxAge ${maxAge}`);
      assert.ok(Date.parse(stored.cookie.expires) > Date.now(), `stored cookie.expires ${stored.cookie.expires}`);
      assertTTL(await upstream.pTTL(key), cookieMaxAgeMs, "after login");
      assert.equal(app.calls.set, 1);

      // A second request with the cookie reads it back.
      res = await fetch(`${app.url}/me`, { headers: { cookie } });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { sid, user: { name: "alice", role: "user" } });

      // Touch: age the key in the upstream, then an unchanged request makes
      // express-session call store.touch (EXPIRE), which restores the TTL.
      assert.equal(await upstream.pExpire(key, 100_000), 1);
      const before = { ...app.calls };
      res = await fetch(`${app.url}/me`, { headers: { cookie } });
      assert.equal(res.status, 200);
      await res.json();
      assert.equal(app.calls.touch, before.touch + 1, "store.touch calls");
      assert.equal(app.calls.set, before.set, "store.set calls (an unchanged session is not rewritten)");
      assertTTL(await upstream.pTTL(key), cookieMaxAgeMs, "after touch");
      assert.deepEqual(JSON.parse(await upstream.get(key)).user, stored.user);

      // The bulk store calls (SCAN + MGET) see the live session.
      assert.ok((await app.store.ids()).includes(sid), "store.ids() lacks the session");
      const all = await app.store.all();
      assert.deepEqual(all.find((s) => s.id === sid)?.user, stored.user);
      assert.ok((await app.store.length()) >= 1);

      // Logout destroys it: the upstream holds the tombstone with the grace
      // TTL, and the proxy shows no session.
      res = await fetch(`${app.url}/logout`, { method: "POST", headers: { cookie } });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true });
      assert.equal(await upstream.get(key), "TOMBSTONE");
      assertTTL(await upstream.pTTL(key), graceMs, "tombstone");
      res = await fetch(`${app.url}/me`, { headers: { cookie } });
      assert.equal(res.status, 401);
      await res.json();
      assert.equal(await client.raw(["GET", key]), null);
      assert.equal(await app.store.get(sid), null);
      assert.ok(!(await app.store.ids()).includes(sid), "store.ids() lists a destroyed session");

      // A late write — a request still in flight when the user logged out —
      // is refused and cannot resurrect the session.
      await assert.rejects(app.store.set(sid, stored), tombstoneError(sid));
      await assert.rejects(app.store.touch(sid, stored), tombstoneError(sid));
      assert.equal(await upstream.get(key), "TOMBSTONE");
      assertTTL(await upstream.pTTL(key), graceMs, "tombstone after the late write");
    });
  }
});
