// connect-redis-session, emulated from its README (the package is not on
// the npm registry; /work/shared/seeds/001 in the project's history): an
// express-session Store over a node-redis v4 client, with the documented
// options and the Promise-based store.access. It sends what a single-key
// store sends — GET, SET … EX, EXPIRE, DEL, and SCAN MATCH … COUNT with
// MGET or DEL per batch — and leaves to sessproxy what the real store does
// in Lua: the tombstone a destroy leaves (tombstone.grace =
// concurrencyGraceSeconds) and, with ttlSeconds: false, the refusal of a
// session without cookie.expires (ttl.require_expires = true: the SET it
// sends then has no EX).
import session from "express-session";

// RedisStore's options and defaults, as documented.
const defaults = {
  prefix: "sessions:",
  scanCount: 100,
  ttlSeconds: 86400,
  concurrencyGraceSeconds: 300,
  disableTouch: false,
  serializer: JSON,
};

export class RedisStore extends session.Store {
  constructor(options) {
    super();
    const o = { ...defaults, ...options };
    if (!o.client) throw new TypeError("RedisStore: options.client (a connected node-redis v4 client) is required");
    this.client = o.client;
    this.prefix = o.prefix;
    this.scanCount = o.scanCount;
    this.ttlSeconds = o.ttlSeconds;
    // Only sessproxy's tombstone.grace can keep a destroyed session's
    // tombstone: the emulation sends plain DEL.
    this.concurrencyGraceSeconds = o.concurrencyGraceSeconds;
    this.disableTouch = o.disableTouch;
    this.serializer = o.serializer;
    this.access = {
      get: (sid) => this.#get(sid),
      set: (sid, sess) => this.#set(sid, sess),
      destroy: (sid) => this.#destroy(sid),
      all: () => this.#all(),
      length: () => this.#length(),
      clear: () => this.#clear(),
    };
  }

  // The express-session Store methods, with callbacks.
  get(sid, cb) {
    settle(this.#get(sid), cb);
  }
  set(sid, sess, cb) {
    settle(this.#set(sid, sess), cb);
  }
  destroy(sid, cb) {
    settle(this.#destroy(sid), cb);
  }
  touch(sid, sess, cb) {
    settle(this.#touch(sid, sess), cb);
  }
  all(cb) {
    settle(this.#all(), cb);
  }
  length(cb) {
    settle(this.#length(), cb);
  }
  clear(cb) {
    settle(this.#clear(), cb);
  }

  async #get(sid) {
    const text = await this.client.get(this.prefix + sid);
    return text == null ? null : this.serializer.parse(text);
  }

  async #set(sid, sess) {
    const key = this.prefix + sid;
    const ttl = this.#ttl(sess);
    if (ttl === undefined) {
      // ttlSeconds: false and no cookie.expires: the real store rejects the
      // session; sessproxy does, under ttl.require_expires.
      await this.client.set(key, this.serializer.stringify(sess));
    } else if (ttl > 0) {
      await this.client.set(key, this.serializer.stringify(sess), { EX: ttl });
    } else {
      await this.#destroy(sid); // the cookie has already expired
    }
  }

  async #touch(sid, sess) {
    if (this.disableTouch) return;
    const ttl = this.#ttl(sess);
    if (ttl !== undefined) await this.client.expire(this.prefix + sid, ttl);
  }

  async #destroy(sid) {
    await this.client.del(this.prefix + sid);
  }

  // #ttl is the session's TTL in seconds: from cookie.expires, else
  // ttlSeconds; undefined when neither gives one.
  #ttl(sess) {
    const expires = sess?.cookie?.expires;
    if (expires) return Math.ceil((new Date(expires).getTime() - Date.now()) / 1000);
    return this.ttlSeconds ? this.ttlSeconds : undefined;
  }

  // #batches walks the store's keys with SCAN, scanCount at a time.
  async *#batches() {
    let cursor = 0;
    do {
      const reply = await this.client.scan(cursor, { MATCH: `${this.prefix}*`, COUNT: this.scanCount });
      cursor = reply.cursor;
      if (reply.keys.length > 0) yield reply.keys;
    } while (cursor !== 0);
  }

  // #all is every session, each with its id, as express-session's
  // Store.all documents.
  async #all() {
    const sessions = [];
    for await (const keys of this.#batches()) {
      const texts = await this.client.mGet(keys);
      texts.forEach((text, i) => {
        if (text != null) sessions.push({ ...this.serializer.parse(text), id: keys[i].slice(this.prefix.length) });
      });
    }
    return sessions;
  }

  async #length() {
    let n = 0;
    for await (const keys of this.#batches()) n += keys.length;
    return n;
  }

  async #clear() {
    for await (const keys of this.#batches()) await this.client.del(keys);
  }
}

// settle reports promise's outcome to an express-session callback.
function settle(promise, cb) {
  promise.then(
    (data) => cb?.(null, data),
    (err) => cb?.(err),
  );
}
