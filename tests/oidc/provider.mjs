// A real OpenID Provider for the tests: npm `oidc-provider` (certified),
// on 127.0.0.1, with static clients and a few people.
//
//   node tests/oidc/provider.mjs '{"port": 0, "clients": [{"client_id": "komainu",
//     "client_secret": "…", "redirect_uris": ["http://127.0.0.1:8081/api/login/corp/callback"]}]}'
//
// Prints `oidc provider listening on http://127.0.0.1:PORT` once it answers.
// Its built-in login page (devInteractions) takes any password; who logs
// in decides the claims: ann (an admin), vic (a viewer), nora (no role),
// eve (an admin from a domain the module may refuse). Consent is granted
// at once to the static clients (first-party).

import http from "node:http";
import Provider from "oidc-provider";

const opts = JSON.parse(process.argv[2] || "{}");

const people = {
  ann: { email: "ann@example.com", name: "Ann Admin", roles: ["komainu-admins"] },
  vic: { email: "vic@example.com", name: "Vic Viewer", roles: ["komainu-viewers"] },
  nora: { email: "nora@example.com", name: "Nora Nobody", roles: [] },
  eve: { email: "eve@elsewhere.test", name: "Eve Elsewhere", roles: ["komainu-admins"] },
};

// Bind first: the issuer names the port.
const server = http.createServer();
await new Promise((resolve) => server.listen(opts.port || 0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (opts.clients || []).map((c) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: c.client_secret ? "client_secret_basic" : "none",
    ...c,
  })),
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    roles: ["roles"],
  },
  // The ID token carries the claims of the scopes asked for (the gateway
  // reads the person from it, not from userinfo).
  conformIdTokenClaims: false,
  cookies: { keys: ["komainu-test-provider-cookie-key-not-a-secret"] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  async findAccount(ctx, sub) {
    const person = people[sub] || { email: `${sub}@example.com`, name: sub, roles: [] };
    return {
      accountId: sub,
      async claims() {
        return { sub, email: person.email, email_verified: true, name: person.name, roles: person.roles };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid email profile roles");
    await grant.save();
    return grant;
  },
});

server.on("request", provider.callback());
console.log(`oidc provider listening on ${issuer}`);

for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
