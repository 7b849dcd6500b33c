// The session flow every store runs through sessproxy, whatever its API:
// login, read, touch, logout, and a late write after the logout, against
// an app from app.mjs. Every step is checked in the upstream, past the
// proxy; what differs between stores (how a session is stored, its TTL, the
// store's own calls) comes in the store description.
import assert from "node:assert/strict";
import { graceMs } from "./env.mjs";
import { sessionCookie, user, cookieMaxAgeMs } from "./app.mjs";

// ttlSlackMs is how far below the TTL it wrote a PTTL may have fallen by
// the time the test reads it (the Go suite's ttlSlack).
const ttlSlackMs = 10_000;

export function assertTTL(pttl, wantMs, what) {
  assert.ok(pttl <= wantMs && pttl > wantMs - ttlSlackMs, `${what}: upstream PTTL ${pttl} ms, want ${wantMs} ms (within ${ttlSlackMs} ms below)`);
}

// tombstoneError matches the proxy's refusal of a write to a destroyed
// session.
export const tombstoneError = (sid) => (err) => {
  assert.equal(err.message, `TOMBSTONE session ${sid} was destroyed`);
  return true;
};

// assertTombstone: the upstream holds the tombstone at key, with what is
// left of the grace: the string TOMBSTONE, or under tombstone.format =
// "typed" (the config file's default) a set holding it.
export async function assertTombstone(upstream, key, what) {
  const type = await upstream.type(key);
  if (type === "set") {
    assert.deepEqual(await upstream.sMembers(key), ["TOMBSTONE"], `${what}: ${key}`);
  } else {
    assert.equal(await upstream.get(key), "TOMBSTONE", `${what}: ${key}`);
  }
  assertTTL(await upstream.pTTL(key), graceMs, what);
}

// callback calls a store method the way express-session does, with a
// callback last (connect-redis 7's methods only report through it).
export function callback(store, method, ...args) {
  return new Promise((resolve, reject) => store[method](...args, (err, data) => (err ? reject(err) : resolve(data))));
}

// sessionFlow runs the flow on app (startApp or startAltApp). s describes
// the store:
//   key(sid)          its Redis key
//   storedUser(key)   the user as the upstream holds it (read directly)
//   ttlMs             the TTL a write or a touch gives the key
//   afterLogin(key)   optional: more checks of the stored session
//   bulk(sid)         optional: the store's multi-key calls must see sid
//   bulkAfter(sid)    optional: and no longer after the logout
//   proxyRead(key)    the session read through the proxy (null once destroyed)
//   lateWrites(sid)   functions making the writes a request still in flight
//                     after the logout would make; each must be refused
export async function sessionFlow(upstream, app, s) {
  // Login creates the session, with the store's TTL.
  let res = await fetch(`${app.url}/login`, { method: "POST" });
  assert.equal(res.status, 200);
  const { sid } = await res.json(); // the whole body: the store write is done
  const cookie = sessionCookie(res);
  assert.ok(cookie, "login set no session cookie");
  const key = s.key(sid);
  assert.deepEqual(await s.storedUser(key), user);
  assertTTL(await upstream.pTTL(key), s.ttlMs, "after login");
  await s.afterLogin?.(key);
  if (app.calls) assert.equal(app.calls.set, 1);

  // A second request with the cookie reads it back.
  res = await fetch(`${app.url}/me`, { headers: { cookie } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { sid, user });

  // Touch: age the key in the upstream, then a request that reads the
  // session renews the TTL (express-session: store.touch, an EXPIRE, for an
  // unchanged session; alt-session: the EXPIRE after every access).
  assert.equal(await upstream.pExpire(key, 100_000), 1);
  const before = app.calls && { ...app.calls };
  res = await fetch(`${app.url}/me`, { headers: { cookie } });
  assert.equal(res.status, 200);
  await res.json();
  if (app.calls) {
    assert.equal(app.calls.touch, before.touch + 1, "store.touch calls");
    assert.equal(app.calls.set, before.set, "store.set calls (an unchanged session is not rewritten)");
  }
  assertTTL(await upstream.pTTL(key), s.ttlMs, "after touch");
  assert.deepEqual(await s.storedUser(key), user);

  await s.bulk?.(sid);

  // Logout destroys it: the upstream holds the tombstone with the grace
  // TTL, and the proxy shows no session.
  res = await fetch(`${app.url}/logout`, { method: "POST", headers: { cookie } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  await assertTombstone(upstream, key, "after logout");
  res = await fetch(`${app.url}/me`, { headers: { cookie } });
  assert.equal(res.status, 401);
  await res.json();
  assert.equal(await s.proxyRead(key), null);
  await s.bulkAfter?.(sid);

  // A late write — a request still in flight when the user logged out —
  // is refused and cannot resurrect the session.
  for (const write of s.lateWrites(sid)) {
    await assert.rejects(write, tombstoneError(sid));
  }
  await assertTombstone(upstream, key, "after the late writes");
  return { sid, key, cookie };
}

// expressStore describes an express-session store that keeps the session
// as express-session's JSON at prefix+sid with the TTL of cookie.expires
// (connect-redis, connect-redis-session). raw sends a command through the
// proxy; list holds the store's multi-key calls as promises: all() (the
// sessions, each with its id), length(), and ids() where the store has it.
export function expressStore(upstream, store, { prefix, raw, list }) {
  return {
    key: (sid) => prefix + sid,
    storedUser: async (key) => JSON.parse(await upstream.get(key)).user,
    ttlMs: cookieMaxAgeMs,
    afterLogin: async (key) => {
      const stored = JSON.parse(await upstream.get(key));
      // (express-session computes originalMaxAge from expires - now: a
      // millisecond may have passed.)
      const maxAge = stored.cookie.originalMaxAge;
      assert.ok(maxAge <= cookieMaxAgeMs && maxAge > cookieMaxAgeMs - 1000, `stored cookie.originalMaxAge ${maxAge}`);
      assert.ok(Date.parse(stored.cookie.expires) > Date.now(), `stored cookie.expires ${stored.cookie.expires}`);
    },
    // The multi-key calls (SCAN + MGET) see the live session, and no
    // longer the destroyed one.
    bulk: async (sid) => {
      if (list.ids) assert.ok((await list.ids()).includes(sid), "store ids lack the session");
      const all = await list.all();
      assert.deepEqual(all.find((s) => s.id === sid)?.user, user);
      assert.ok((await list.length()) >= 1);
    },
    bulkAfter: async (sid) => {
      assert.equal((await callback(store, "get", sid)) ?? null, null); // connect-redis 7 answers undefined
      if (list.ids) assert.ok(!(await list.ids()).includes(sid), "store ids list a destroyed session");
      assert.ok(!(await list.all()).some((s) => s.id === sid), "store all() lists a destroyed session");
    },
    proxyRead: (key) => raw(["GET", key]),
    lateWrites: (sid) => {
      const sess = { cookie: { originalMaxAge: cookieMaxAgeMs, expires: new Date(Date.now() + cookieMaxAgeMs).toISOString() }, user };
      return [() => callback(store, "set", sid, sess), () => callback(store, "touch", sid, sess)];
    },
  };
}
