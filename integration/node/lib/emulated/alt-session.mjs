// alt-session, emulated from its README (the package is not on the npm
// registry; /work/shared/seeds/003 in the project's history): Express
// middleware that gives req.session an asynchronous per-field API over one
// Redis hash per session, with an idle timeout (tti) renewed on every
// access. Each call sends what such a store sends through node-redis v4:
// HGET / HSET / HMGET / HDEL, then EXPIRE tti; invalidate is DEL, which
// sessproxy turns into a tombstone. On connect it sends SELECT dbIndex.
//
// Choices the README leaves open, made here:
//   - the key is `${prefix}:${id}` (prefix "sess" → "sess:<id>", what
//     sessproxy's alt-session preset expects);
//   - the cookie is "sid", set on the first response; invalidate clears it;
//   - each method returns a Promise and also takes the README's optional
//     node-style callback;
//   - the EXPIRE after a read of a destroyed session is refused by sessproxy
//     (-TOMBSTONE: EXPIRE is a write), where Redis would answer 0 for a
//     missing key; the read found no session either way, so a read treats
//     that refusal as "no session" and answers null. Writes (set, remove)
//     report the refusal: their HSET / HDEL is refused first.
import { randomBytes } from "node:crypto";
import { createClient } from "redis-4";

const cookieName = "sid";

// The README's session options and their defaults.
const defaults = { dbIndex: 0, tti: 300, prefix: "sess", secure: false, domain: undefined };

// AltSessionStore is the Redis side: one connected client and the session
// options.
export class AltSessionStore {
  constructor(client, options) {
    this.client = client;
    this.options = { ...defaults, ...options };
  }

  // connect opens the README's redis options ({host, port, auth_pass}) with
  // node-redis v4 and selects dbIndex.
  static async connect(redis, options) {
    const client = createClient({
      socket: { host: redis.host, port: redis.port, reconnectStrategy: false },
      ...(redis.auth_pass ? { password: redis.auth_pass } : {}),
    });
    client.on("error", () => {}); // errors reach the commands
    await client.connect();
    const store = new AltSessionStore(client, options);
    try {
      // node-redis sends no SELECT for database 0: send it always, as a
      // store with a dbIndex option does.
      await client.sendCommand(["SELECT", String(store.options.dbIndex)]);
    } catch (err) {
      await client.disconnect();
      throw err;
    }
    return store;
  }

  key(id) {
    return `${this.options.prefix}:${id}`;
  }

  // session is the README's API for the session id.
  session(id) {
    return new AltSession(this, id);
  }

  close() {
    return this.client.quit();
  }
}

class AltSession {
  #store;
  constructor(store, id) {
    this.#store = store;
    this.id = id;
  }

  get(field, cb) {
    return settle(
      this.#read((c, key) => c.hGet(key, field)),
      cb,
    );
  }

  mget(fields, cb) {
    return settle(
      this.#read(async (c, key) => {
        const values = await c.hmGet(key, fields);
        return Object.fromEntries(fields.map((f, i) => [f, values[i]]));
      }),
      cb,
    );
  }

  set(field, value, cb) {
    return settle(
      this.#write((c, key) => c.hSet(key, field, value)),
      cb,
    );
  }

  // remove takes one field or an array of them.
  remove(fields, cb) {
    return settle(
      this.#write((c, key) => c.hDel(key, fields)),
      cb,
    );
  }

  invalidate(cb) {
    return settle(this.#store.client.del(this.#store.key(this.id)).then(() => undefined), cb);
  }

  // #read runs a read, then renews the idle timeout.
  async #read(op) {
    const { client, options } = this.#store;
    const key = this.#store.key(this.id);
    const value = await op(client, key);
    try {
      await client.expire(key, options.tti);
    } catch (err) {
      if (!String(err.message).startsWith("TOMBSTONE ")) throw err;
      return emptyLike(value); // destroyed: no session
    }
    return value;
  }

  // #write runs a write, then renews the idle timeout.
  async #write(op) {
    const { client, options } = this.#store;
    const key = this.#store.key(this.id);
    await op(client, key);
    await client.expire(key, options.tti);
  }
}

// emptyLike is what a read of a missing session answers: null for get,
// every field null for mget.
function emptyLike(value) {
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.keys(value).map((f) => [f, null]));
  return null;
}

// altSession is the middleware: { redis, session } as in the README. Its
// store is on middleware.store.
export async function altSession({ redis, session }) {
  const store = await AltSessionStore.connect(redis, session);
  const o = store.options;
  const middleware = (req, res, next) => {
    let id = cookieValue(req, cookieName);
    if (!id) {
      id = randomBytes(24).toString("base64url");
      res.cookie(cookieName, id, { httpOnly: true, secure: o.secure, domain: o.domain, path: "/" });
    }
    req.session = store.session(id);
    const invalidate = req.session.invalidate.bind(req.session);
    req.session.invalidate = (cb) => {
      if (!res.headersSent) res.clearCookie(cookieName, { domain: o.domain, path: "/" });
      return invalidate(cb);
    };
    next();
  };
  middleware.store = store;
  return middleware;
}

// cookieValue reads a cookie: req.cookies when cookie-parser ran first (as
// the README asks), else the Cookie header.
function cookieValue(req, name) {
  if (req.cookies) return req.cookies[name];
  for (const pair of (req.headers.cookie ?? "").split(";")) {
    const i = pair.indexOf("=");
    if (i > 0 && pair.slice(0, i).trim() === name) return decodeURIComponent(pair.slice(i + 1).trim());
  }
  return undefined;
}

// settle returns promise, and reports its outcome to cb when one is given.
function settle(promise, cb) {
  if (cb) promise.then((v) => cb(null, v), cb);
  return promise;
}
