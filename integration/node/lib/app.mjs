// The Express apps under test, on ephemeral ports, each with the same
// routes: POST /login stores a user in a new session, GET /me reads it back
// (401 when there is none), POST /logout destroys the session. startApp
// runs express-session over any of its stores (connect-redis, as its README
// sets it up, or the emulated connect-redis-session); startAltApp runs the
// emulated alt-session middleware, whose session API is asynchronous.
import express from "express";
import session from "express-session";
import { altSession } from "./emulated/alt-session.mjs";

// cookieMaxAgeMs gives every express-session cookie an expiry, from which
// the store derives the TTL it writes (and the proxy its own).
export const cookieMaxAgeMs = 60 * 60 * 1000;

export const user = { name: "alice", role: "user" };

// startApp serves express-session over store and counts the store calls it
// makes.
export async function startApp(store) {
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
    req.session.user = user;
    res.json({ sid: req.sessionID });
  });
  app.get("/me", (req, res) => {
    if (!req.session.user) return res.status(401).json({ user: null });
    res.json({ sid: req.sessionID, user: req.session.user });
  });
  app.post("/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  return { ...(await listen(app)), store, calls };
}

// startAltApp serves the emulated alt-session middleware (options as its
// README: redis, session) with the same routes; user is one hash field.
export async function startAltApp(options) {
  const middleware = await altSession(options);
  const app = express();
  app.use(middleware);
  app.post("/login", async (req, res) => {
    await req.session.set("user", JSON.stringify(user));
    res.json({ sid: req.session.id });
  });
  app.get("/me", async (req, res) => {
    const u = await req.session.get("user");
    if (!u) return res.status(401).json({ user: null });
    res.json({ sid: req.session.id, user: JSON.parse(u) });
  });
  app.post("/logout", async (req, res) => {
    await req.session.invalidate();
    res.json({ ok: true });
  });
  const served = await listen(app);
  return {
    ...served,
    store: middleware.store,
    close: async () => {
      await served.close();
      await middleware.store.close();
    },
  };
}

async function listen(app) {
  app.use((err, req, res, next) => {
    res.status(500).json({ error: err.message });
  });
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, "127.0.0.1", (err) => (err ? reject(err) : resolve(s)));
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// sessionCookie is the "name=value" pair of a response's session cookie.
export function sessionCookie(res) {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("sid="));
  return set?.split(";")[0];
}
