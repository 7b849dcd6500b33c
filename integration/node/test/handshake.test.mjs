// What each client sends on connect — HELLO 3 (with AUTH), or AUTH, then
// CLIENT SETINFO, node-redis's CLIENT MAINT_NOTIFICATIONS, ioredis's INFO
// ready check — answered as Redis 7 answers it, and the replies that differ
// between RESP2 and RESP3.
import { describe, it } from "node:test";
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import { proxy, authEnv } from "../lib/env.mjs";
import { variants, connect, libVersions } from "../lib/clients.mjs";

const { authProxy, password } = authEnv();

// clientInfo parses CLIENT INFO's "k=v k=v" line.
async function clientInfo(client) {
  const line = String(await client.raw(["CLIENT", "INFO"])).trim();
  return Object.fromEntries(line.split(" ").map((kv) => kv.split(/=(.*)/s).slice(0, 2)));
}

// asObject turns a map reply, whichever way the library shows it (object,
// Map, or a flat array in RESP2), into an object.
function asObject(reply) {
  if (reply instanceof Map) return Object.fromEntries(reply);
  if (Array.isArray(reply)) {
    const o = {};
    for (let i = 0; i < reply.length; i += 2) o[reply[i]] = reply[i + 1];
    return o;
  }
  return reply;
}

// message checks an error's message (String(err) starts with its class).
const message = (re) => (err) => {
  assert.match(err.message, re);
  return true;
};

describe("client handshakes through sessproxy", () => {
  for (const v of variants) {
    it(`${v.name}: connects on RESP${v.resp} and identifies itself`, async (t) => {
      const client = await connect(v, proxy);
      t.after(() => client.close());
      const info = await clientInfo(client);
      assert.equal(info.resp, String(v.resp));
      assert.equal(info["lib-name"], v.lib);
      assert.equal(info["lib-ver"], libVersions[v.lib]);

      const helloReply = await client.raw(["HELLO"]);
      const hello = asObject(helloReply);
      assert.equal(hello.server, "redis");
      assert.equal(hello.version, "7.0.15");
      assert.equal(Number(hello.proto), v.resp);

      // Nulls and maps: _ and %N in RESP3, $-1 and a flat array in RESP2;
      // every library hands the app null and its usual shapes.
      const sid = `hs-${v.lib}-${v.resp}-${randomUUID()}`;
      assert.equal(await client.raw(["SESS.SET", sid, '{"n":1}']), "OK");
      assert.equal(await client.raw(["SESS.GET", `${sid}-missing`]), null);
      assert.deepEqual(await client.raw(["MGET", `sess:${sid}`, `sess:${sid}-missing`]), ['{"n":1}', null]);
      const allReply = await client.raw(["SESS.ALL"]);
      assert.equal(asObject(allReply)[sid], '{"n":1}');
      // A RESP3 map reaches the app as an object, a RESP2 one as the flat
      // array it is on the wire (ioredis flattens both unless its
      // replyMapping is "resp3").
      assert.equal(Array.isArray(helloReply), !v.mapObjects, "HELLO reply shape");
      assert.equal(Array.isArray(allReply), !v.mapObjects, "SESS.ALL reply shape");
      assert.equal(await client.raw(["SESS.DESTROY", sid]), 1);
      // Unknown commands are errors, and the connection stays usable.
      await assert.rejects(client.raw(["FLUSHALL"]), message(/^ERR unknown or unsupported command 'FLUSHALL'/));
      assert.equal(await client.raw(["PING"]), "PONG");
    });

    it(`${v.name}: authenticates with requirepass`, async (t) => {
      // RESP3 clients send HELLO 3 AUTH default <password>; RESP2 ones AUTH.
      const client = await connect(v, authProxy, password);
      t.after(() => client.close());
      const info = await clientInfo(client);
      assert.equal(info.user, "default");
      assert.equal(info.resp, String(v.resp));
      assert.equal(await client.raw(["SESS.GET", "auth-missing"]), null);

      await assert.rejects(connect(v, authProxy, "wrong"), message(/^WRONGPASS invalid username-password pair or user is disabled\.$/));
      // No password: HELLO 3 is refused before AUTH, and so is every command
      // after a RESP2 connect.
      await assert.rejects(async () => {
        const c = await connect(v, authProxy);
        try {
          await c.raw(["SESS.GET", "auth-missing"]);
        } finally {
          await c.close();
        }
      }, message(/^NOAUTH /));
    });

    // With no requirepass, Redis's default user takes any password in
    // HELLO 3 AUTH default <password>; (RESP2's one-argument AUTH is an
    // error there, as in Redis.)
    if (v.resp !== 3) continue;
    it(`${v.name}: a password the proxy does not need is accepted, as by Redis`, async (t) => {
      const client = await connect(v, proxy, "not-needed");
      t.after(() => client.close());
      assert.equal(await client.raw(["SESS.GET", "nopass-missing"]), null);
    });
  }
});
