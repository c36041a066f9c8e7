//! The request pipeline, phase by phase.
//!
//! ```text
//! request head ─▶ head ─▶ route ─▶ authenticate ─▶ authorize ─▶ quota ─▶ forward ─▶ adapter sends it
//!                  │        │           │              │          │         │
//!                  └────────┴───────────┴── error ─────┴──────────┴─────────┴─▶ Outcome::Respond
//! backend head ─▶ respond (handle_response) ─▶ client
//! ```
//!
//! Each phase either passes to the next or ends the request with a
//! [`GatewayError`], which [`Gateway::error_response`] turns into the JSON
//! answer of the contract.

use http::request::Parts;

use super::context::{ClientInfo, Decision, Forward, Outcome, RequestContext, RequestId};
use super::head::{HeaderLookup, RequestHead};
use super::trace::TraceContext;
use super::upstream::{rewrite_request, Forwarding};
use super::Gateway;
use crate::auth::credentials;
use crate::auth::CompiledKey;
use crate::model::QuotaFailure;
use crate::quota::{Plan, QuotaState};
use crate::store::CounterStore;
use crate::GatewayError;

/// What authentication found.
pub(crate) struct Caller<'g> {
    pub(crate) key: &'g CompiledKey,
    /// The credentials came in `Authorization` (to be removed upstream).
    pub(crate) in_authorization: bool,
}

impl Gateway {
    /// Runs the request phases on a request head received at `now_ms`.
    ///
    /// On [`Outcome::Forward`], `parts` has been rewritten in place for the
    /// backend (absolute URI of the chosen target, credentials removed,
    /// `X-Forwarded-*`, `Komainu-Request-Id` and `Komainu-Claim` added): the
    /// adapter sends it with the request body. The context goes to
    /// [`Gateway::handle_response`] or [`Gateway::error_response`] later.
    pub async fn handle_request<C: CounterStore>(
        &self,
        counters: &C,
        parts: &mut Parts,
        client: &ClientInfo,
        now_ms: u64,
        request_id: RequestId,
    ) -> (RequestContext, Outcome) {
        if let Err(error) = normalize_uri(parts) {
            let ctx = RequestContext::new(request_id, now_ms);
            return self.refuse(ctx, error);
        }
        join_cookie_crumbs(&mut parts.headers);
        let (ctx, decision) = self
            .decide(counters, &*parts, client, now_ms, request_id)
            .await;
        let forwarding = match decision {
            Ok(Decision::Forward(forwarding)) => forwarding,
            Ok(Decision::Answer(response)) => return (ctx, Outcome::Respond(response)),
            Ok(Decision::Login(step)) => return (ctx, Outcome::Login(step)),
            Err(error) => return self.refuse(ctx, error),
        };
        // (Upgrade is hop-by-hop: read before the head is rewritten.)
        let upgrade = parts
            .headers
            .get(http::header::UPGRADE)
            .is_some_and(|p| forwarding.allows_upgrade(p.as_bytes()));
        match rewrite_request(parts, &forwarding, client, &ctx) {
            Ok(()) => {
                let forward = Forward {
                    timeouts: forwarding.timeouts,
                    max_body_bytes: forwarding.max_body_bytes,
                    upgrade,
                };
                (ctx, Outcome::Forward(forward))
            }
            Err(error) => self.refuse(ctx, error),
        }
    }

    /// The answer to a refused request; the error stays in the context.
    fn refuse(&self, mut ctx: RequestContext, error: GatewayError) -> (RequestContext, Outcome) {
        let response = self.error_response(&ctx, &error);
        ctx.refusal = Some(error);
        (ctx, Outcome::Respond(response))
    }

    /// Runs the request phases on any [`RequestHead`] whose path is
    /// already normalized ([`crate::path::normalize`]), leaving the head
    /// untouched: the answer is where to forward and how to rewrite the
    /// head ([`Forwarding`]), or the error to answer with
    /// ([`Gateway::error_response`]). For adapters that write the
    /// forwarded head themselves.
    pub async fn decide<C: CounterStore, H: RequestHead>(
        &self,
        counters: &C,
        head: &H,
        client: &ClientInfo,
        now_ms: u64,
        request_id: RequestId,
    ) -> (RequestContext, Result<Decision<'_>, GatewayError>) {
        let mut ctx = RequestContext::new(request_id, now_ms);
        ctx.client_ip = crate::access::client_ip(
            client.addr,
            head.first("x-forwarded-for"),
            &self.trusted_proxies,
        );
        let decision = self.run_phases(counters, head, client, &mut ctx).await;
        (ctx, decision)
    }

    async fn run_phases<C: CounterStore, H: RequestHead>(
        &self,
        counters: &C,
        head: &H,
        client: &ClientInfo,
        ctx: &mut RequestContext,
    ) -> Result<Decision<'_>, GatewayError> {
        ctx.trace =
            TraceContext::continue_or_start(head.first("traceparent"), ctx.request_id.bits());
        self.check_head(head)?;
        // The gateway's own login paths (only when some route is private).
        if let Some(step) = self.login_path(head, client.tls) {
            ctx.answered = true;
            return Ok(Decision::Login(step));
        }
        // A CORS preflight asks about another method than its own.
        // (Headers are looked at only for OPTIONS and on CORS routes: the
        // other requests pay nothing for CORS.)
        let preflight = if *head.method() == http::Method::OPTIONS {
            head.first("origin")
                .zip(head.first("access-control-request-method"))
        } else {
            None
        };
        let has_cors = |r: &usize| self.routes[*r].cors.is_some();
        let (route, method_served) = match (self.route(head), preflight) {
            (Ok(route), _) => (route, true),
            (Err(error), Some((_, method))) => {
                match self.route_for_method(head, method).filter(has_cors) {
                    Some(route) => (route, true),
                    // A CORS route on this path that does not serve the
                    // method asked: the preflight is refused, saying why.
                    None => (
                        self.route_for_method(head, b"GET")
                            .filter(has_cors)
                            .ok_or(error)?,
                        false,
                    ),
                }
            }
            (Err(error), None) => return Err(error),
        };
        ctx.route = Some(route);
        ctx.route_id = Some(self.routes[route].id.clone());
        if let Some(cors) = &self.routes[route].cors {
            ctx.cors = head.first("origin").and_then(|origin| cors.reply(origin));
        }
        self.access(route, ctx)?;
        if let (Some(cors), Some((origin, method))) = (&self.routes[route].cors, preflight) {
            // Answered here, never forwarded, before credentials (a
            // preflight carries none).
            ctx.answered = true;
            let answer = if method_served {
                cors.preflight(origin, method)
            } else {
                None
            };
            let mut response = answer.ok_or_else(|| GatewayError::CorsRefused {
                what: if ctx.cors.is_none() {
                    format!("the origin {}", String::from_utf8_lossy(origin))
                } else {
                    format!("the method {}", String::from_utf8_lossy(method))
                },
            })?;
            super::reply::add_context_headers(ctx, response.headers_mut());
            return Ok(Decision::Answer(response));
        }
        self.maintenance(route)?;
        // A private route: a person's session, or (where the route takes
        // them) an API key; else a browser goes to log in.
        if let Some(login) = &self.routes[route].login {
            match self.person_of(login, head, ctx.received_ms) {
                Some(person) => {
                    if !login.roles.is_empty()
                        && !person.roles.iter().any(|r| login.roles.contains(r))
                    {
                        return Err(GatewayError::PersonForbidden {
                            who: person.label(),
                            route_id: self.routes[route].id.to_string(),
                            roles: login.roles.join(", "),
                        });
                    }
                    ctx.person = Some(Box::new(person));
                    self.body_size(route, head)?;
                    let drop_authorization = !self.routes[route].pass_authorization
                        && head
                            .first("authorization")
                            .is_some_and(credentials::is_gateway_scheme);
                    return self
                        .forward(route, None, drop_authorization, head, ctx)
                        .map(Decision::Forward);
                }
                None if login.api_keys && credentials::extract(head).ok().flatten().is_some() => {}
                None => {
                    let navigation =
                        matches!(*head.method(), http::Method::GET | http::Method::HEAD)
                            && head.first("accept").is_some_and(|a| {
                                a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html"))
                            });
                    if navigation {
                        ctx.answered = true;
                        return Ok(Decision::Answer(self.login_redirect(login, head)));
                    }
                    return Err(GatewayError::LoginRequired {
                        login: format!("{}login/{}", super::login::PREFIX, login.module),
                    });
                }
            }
        }
        let caller = match self.authenticate(route, head, ctx.received_ms) {
            Ok(caller) => caller,
            Err(error) => {
                ctx.claimed_client_id = self
                    .credentials(route, head)
                    .ok()
                    .flatten()
                    .and_then(|c| c.claimed_client_id());
                return Err(error);
            }
        };
        if let Some(caller) = &caller {
            ctx.client_id = Some(caller.key.client_id.clone());
            ctx.key_name = Some(caller.key.name.clone());
            if self.per_key_metrics {
                ctx.key_stats = Some(caller.key.stats.clone());
            }
            self.authorize(caller.key, route, head.method())?;
            self.body_size(route, head)?;
            self.quota(counters, caller.key, route, ctx).await?;
        } else {
            self.body_size(route, head)?;
        }
        // A route that answers itself: after the key and the quota.
        if let Some(answer) = &self.routes[route].answer {
            ctx.answered = true;
            let mut response = answer.respond(head, client);
            super::reply::add_context_headers(ctx, response.headers_mut());
            return Ok(Decision::Answer(response));
        }
        // Credentials never reach the backend: those that proved the caller,
        // and, on a public route, any Authorization in a form the gateway
        // reads (Basic, Bearer), meant for it or not, unless the route
        // passes it on to a backend that authenticates callers itself.
        let drop_authorization = match &caller {
            Some(c) => c.in_authorization,
            None => {
                !self.routes[route].pass_authorization
                    && head
                        .first("authorization")
                        .is_some_and(credentials::is_gateway_scheme)
            }
        };
        self.forward(route, caller.as_ref(), drop_authorization, head, ctx)
            .map(Decision::Forward)
    }

    /// **head** (before routing): refuses oversized headers. Default: 431
    /// `headers_too_large` beyond `settings.maxRequestHeaderBytes`.
    pub(crate) fn check_head(&self, head: &impl RequestHead) -> Result<(), GatewayError> {
        if head.header_bytes() > self.max_header_bytes {
            return Err(GatewayError::HeadersTooLarge {
                limit: self.max_header_bytes,
            });
        }
        Ok(())
    }

    /// **route**: the enabled route serving the request's host, path and
    /// method (see [`crate::routing`] for precedence). Default: 404
    /// `route_not_found`.
    pub(crate) fn route(&self, head: &impl RequestHead) -> Result<usize, GatewayError> {
        let host = head.host();
        self.table
            .find(host, head.method(), head.path())
            .ok_or_else(|| GatewayError::RouteNotFound {
                method: head.method().to_string(),
                host: host.to_owned(),
                path: head.path().to_owned(),
            })
    }

    /// The route serving the request's host and path for `method` (a
    /// preflight's `Access-Control-Request-Method`).
    fn route_for_method(&self, head: &impl RequestHead, method: &[u8]) -> Option<usize> {
        let method = http::Method::from_bytes(method.trim_ascii()).ok()?;
        self.table.find(head.host(), &method, head.path())
    }

    /// **access** (after routing): the route's and the gateway's IP lists
    /// against the client's address. Default: 403 `ip_forbidden`.
    pub(crate) fn access(&self, route: usize, ctx: &RequestContext) -> Result<(), GatewayError> {
        let access = &self.routes[route].access;
        if access.is_open() || access.admits(ctx.client_ip) {
            return Ok(());
        }
        Err(GatewayError::IpForbidden {
            ip: ctx
                .client_ip
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
        })
    }

    /// **body size** (before the quota: a refused body costs no call): a
    /// declared `Content-Length` over the route's limit. Default: 413
    /// `payload_too_large`. Bodies of unknown length are counted by the
    /// adapter as they stream ([`Forwarding::max_body_bytes`]).
    pub(crate) fn body_size(
        &self,
        route: usize,
        head: &impl RequestHead,
    ) -> Result<(), GatewayError> {
        let Some(limit) = self.routes[route].max_body_bytes else {
            return Ok(());
        };
        let declared = head
            .first("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > limit => Err(GatewayError::PayloadTooLarge { limit }),
            _ => Ok(()),
        }
    }

    /// **maintenance** (after routing): a route in maintenance (its own
    /// flag, or `settings.maintenance.enabled`) answers 503 `maintenance`
    /// with `Retry-After` and the settings' message; nothing is counted or
    /// forwarded.
    pub(crate) fn maintenance(&self, route: usize) -> Result<(), GatewayError> {
        if !self.routes[route].maintenance {
            return Ok(());
        }
        Err(GatewayError::Maintenance {
            message: self.maintenance.message.clone(),
            retry_after_s: self.maintenance.retry_after_seconds,
        })
    }

    /// **authenticate**: for a non-public route, the key proven by the
    /// request's credentials. Public routes skip it (`None`). Default: 401
    /// `missing_credentials` without credentials, `invalid_credentials` for
    /// malformed, unknown, wrong, disabled or expired ones.
    pub(crate) fn authenticate(
        &self,
        route: usize,
        headers: &impl HeaderLookup,
        now_ms: u64,
    ) -> Result<Option<Caller<'_>>, GatewayError> {
        if self.routes[route].public {
            return Ok(None);
        }
        let found = self
            .credentials(route, headers)?
            .ok_or(GatewayError::MissingCredentials)?;
        let key = self.keys.authenticate(&found, now_ms)?;
        Ok(Some(Caller {
            key,
            in_authorization: found.in_authorization(),
        }))
    }

    /// The credentials of a request on `route`: the gateway's forms, and
    /// Otoroshi's on a route with its profile.
    fn credentials<'h, H: HeaderLookup + ?Sized>(
        &self,
        route: usize,
        headers: &'h H,
    ) -> Result<Option<credentials::Credentials<'h>>, GatewayError> {
        match &self.routes[route].otoroshi {
            Some(p) => credentials::extract_otoroshi(headers, &p.id_header, &p.secret_header),
            None => credentials::extract(headers),
        }
    }

    /// **authorize**: whether the key may call the route (named in the
    /// key's `routes`, or a group in common) with this method (a read-only
    /// key: GET, HEAD and OPTIONS only). Default: 403 `forbidden`.
    pub(crate) fn authorize(
        &self,
        key: &CompiledKey,
        route: usize,
        method: &http::Method,
    ) -> Result<(), GatewayError> {
        let r = &self.routes[route];
        if key.read_only
            && !matches!(
                *method,
                http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
            )
        {
            return Err(GatewayError::ReadOnlyKey {
                client_id: key.client_id.to_string(),
                method: method.to_string(),
            });
        }
        if key.may_call(route, &r.groups) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden {
                client_id: key.client_id.to_string(),
                route_id: r.id.to_string(),
            })
        }
    }

    /// **quota**: counts the call against the key's windows in one atomic
    /// store operation. Default: 429 `quota_exceeded` with `Retry-After`
    /// when a window is spent. When the store fails, the route's
    /// `quotaFailure` policy decides: `open` admits the call uncounted
    /// (noted in the context), `closed` answers 503 `store_unavailable`.
    pub(crate) async fn quota<C: CounterStore>(
        &self,
        counters: &C,
        key: &CompiledKey,
        route: usize,
        ctx: &mut RequestContext,
    ) -> Result<(), GatewayError> {
        let plan = Plan::new(&key.quotas, ctx.received_ms);
        if plan.is_empty() {
            return Ok(());
        }
        let acquired = match counters.acquire(&key.client_id, plan.bumps()).await {
            Ok(acquired) => acquired,
            Err(e) => {
                return match self.routes[route].quota_failure {
                    QuotaFailure::Open => {
                        ctx.quota_unchecked = Some(e.to_string());
                        Ok(())
                    }
                    QuotaFailure::Closed => Err(GatewayError::StoreUnavailable(e.to_string())),
                };
            }
        };
        let state = QuotaState::new(plan, acquired, ctx.received_ms);
        ctx.quota = Some(state);
        match state.exceeded() {
            None => Ok(()),
            Some((window, limit, retry_after_s)) => Err(GatewayError::QuotaExceeded {
                window,
                limit,
                retry_after_s,
            }),
        }
    }

    /// **forward**: picks a target (the route's load balancing) and signs
    /// the claim; `drop_authorization` says whether `Authorization` stays
    /// out. Default: 503 `no_healthy_target` when no target takes traffic.
    pub(crate) fn forward(
        &self,
        route: usize,
        caller: Option<&Caller<'_>>,
        drop_authorization: bool,
        head: &impl RequestHead,
        ctx: &mut RequestContext,
    ) -> Result<Forwarding<'_>, GatewayError> {
        let r = &self.routes[route];
        let chosen = r
            .balancer
            .pick(head, ctx.client_ip, ctx.request_id.bits(), ctx.received_ms)
            .ok_or_else(|| GatewayError::NoHealthyTarget(r.id.to_string()))?;
        ctx.target = Some(chosen);
        ctx.picked_ms = ctx.received_ms;
        let target = r.balancer.target(chosen);
        let claim = match &ctx.person {
            Some(person) => {
                self.claim
                    .sign_person(person, &r.id, ctx.received_ms, ctx.request_id.as_str())
            }
            None => self.claim.sign(
                caller.map(|c| &*c.key.client_id),
                &r.id,
                ctx.received_ms,
                ctx.request_id.as_str(),
            ),
        };
        let otoroshi = r.otoroshi.as_ref().map(|p| {
            let caller = match (&ctx.person, caller) {
                (Some(person), _) => super::otoroshi::Caller::Person(person),
                (None, Some(c)) => super::otoroshi::Caller::Key(c.key),
                (None, None) => super::otoroshi::Caller::Public,
            };
            let (out, exchange) = p.outgoing(
                self.otoroshi_signer.as_ref(),
                caller,
                ctx.received_ms,
                ctx.request_id.as_str(),
            );
            ctx.otoroshi = exchange;
            (p, out)
        });
        Ok(Forwarding {
            otoroshi,
            target,
            timeouts: r.timeouts,
            max_body_bytes: r.max_body_bytes,
            drop_authorization,
            upgrades: &r.upgrades,
            claim,
            strip_prefix: r.strip_prefix.as_deref(),
            rewrite: r.rewrite.as_ref(),
            host_override: r.host_override.as_deref(),
            rules: r.request_rules.as_ref(),
        })
    }
}

/// Joins the `Cookie` fields an HTTP/2 client split into crumbs into one
/// (RFC 9113, 8.2.3): what the gateway reads (a person's session) and what
/// an HTTP/1.1 backend receives is one `Cookie` header.
fn join_cookie_crumbs(headers: &mut http::HeaderMap) {
    let mut crumbs = headers.get_all(http::header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let joined: Vec<u8> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(value) = http::HeaderValue::from_bytes(&joined) {
        headers.insert(http::header::COOKIE, value);
    }
}

/// Replaces the path of `parts.uri` by its normalized form
/// ([`crate::path::normalize`]): routing and the backend see the same path.
fn normalize_uri(parts: &mut Parts) -> Result<(), GatewayError> {
    let normalized = match crate::path::normalize(parts.path_and_query()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(pq)) => pq,
        Err(e) => return Err(GatewayError::BadRequest(e.to_string())),
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(
        normalized
            .parse()
            .map_err(|_| GatewayError::BadRequest("invalid request path".into()))?,
    );
    parts.uri = http::Uri::from_parts(uri)
        .map_err(|_| GatewayError::BadRequest("invalid request target".into()))?;
    Ok(())
}
