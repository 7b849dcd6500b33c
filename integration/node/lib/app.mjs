// The Express app under test: express-session with connect-redis, as the
// connect-redis README sets it up, on an ephemeral port.
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";

// cookieMaxAgeMs gives every session cookie an expiry, from which
// connect-redis derives the TTL it writes (and the proxy its own).
export const cookieMaxAgeMs = 60 * 60 * 1000;

// startApp serves the app with a RedisStore over client (node-redis API)
// and counts the store calls express-session makes.
export async function startApp(client) {
  const store = new RedisStore({ client, prefix: "sess:" });
  const calls = { set: 0, touch: 0, destroy: 0 };
  for (const method of Object.keys(calls)) {
    const original = store[method].bind(store);
    store[method] = (...args) => {
      calls[method]++;
      return original(...args);
    };
  }

  const app = express();
  app.use(
    session({
      store,
      name: "sid",
      secret: "sessproxy integration",
      resave: false, // unchanged sessions are touched, not rewritten
      saveUninitialized: false,
      rolling: true, // every response refreshes the cookie, and so the TTL
      cookie: { maxAge: cookieMaxAgeMs },
    }),
  );
  app.post("/login", (req, res) => {
    req.session.user = { name: "alice", role: "user" };
    res.json({ sid: req.sessionID });
  });
  app.get("/me", (req, res) => {
    if (!req.session.user) return res.status(401).json({ user: null });
    res.json({ sid: req.sessionID, user: req.session.user });
  });
  app.post("/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.use((err, req, res, next) => {
    res.status(500).json({ error: err.message });
  });

  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, "127.0.0.1", (err) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    calls,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// sessionCookie is the "name=value" pair of a response's session cookie.
export function sessionCookie(res) {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("sid="));
  return set?.split(";")[0];
}
