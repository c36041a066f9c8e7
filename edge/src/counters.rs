//! Quota counters at the edge: one Durable Object per API key, which
//! handles one call at a time, so quotas are exact across the network.
//! [`DoCounterStore`] is the core's `CounterStore` over them.

// The `durable_object` macro generates undocumented public items.
#![allow(missing_docs)]

use std::cell::RefCell;

use komainu_core::quota::{Acquired, Bump, CounterSlots};
use komainu_core::store::{CounterStore, StoreError};
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State,
};

/// The binding of the counter Durable Objects.
pub const BINDING: &str = "KOMAINU_COUNTER_DO";

/// The counters of one API key.
#[durable_object(fetch)]
pub struct CounterObject {
    state: State,
    slots: RefCell<Option<CounterSlots>>,
}

#[derive(Serialize, Deserialize)]
struct Call {
    bumps: Vec<Bump>,
}

impl DurableObject for CounterObject {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            slots: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call: Call = req.json().await?;
        if self.slots.borrow().is_none() {
            let stored: CounterSlots = self.state.storage().get("slots").await?.unwrap_or_default();
            self.slots.borrow_mut().get_or_insert(stored);
        }
        // Decided and applied without an await in between: calls are serial.
        let (acquired, updated) = {
            let mut guard = self.slots.borrow_mut();
            let slots = guard.get_or_insert_with(CounterSlots::default);
            match req.path().as_str() {
                "/acquire" => {
                    let acquired = slots.acquire(&call.bumps);
                    (acquired, acquired.admitted.then_some(*slots))
                }
                "/reset" => {
                    slots.reset(&call.bumps);
                    (
                        Acquired {
                            admitted: false,
                            counts: slots.peek(&call.bumps),
                        },
                        Some(*slots),
                    )
                }
                _ => (
                    Acquired {
                        admitted: false,
                        counts: slots.peek(&call.bumps),
                    },
                    None,
                ),
            }
        };
        if let Some(slots) = updated {
            self.state.storage().put("slots", slots).await?;
        }
        Response::from_json(&acquired)
    }
}

/// The core's counter store, over the per-key Durable Objects.
pub struct DoCounterStore<'a> {
    /// The Worker's environment (for the binding).
    pub env: &'a Env,
}

impl DoCounterStore<'_> {
    async fn call(
        &self,
        path: &str,
        client_id: &str,
        bumps: &[Bump],
    ) -> std::result::Result<Acquired, StoreError> {
        let unavailable =
            |e: worker::Error| StoreError::Unavailable(format!("counter Durable Object: {e}"));
        let body = serde_json::to_string(&Call {
            bumps: bumps.to_vec(),
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let stub = self
            .env
            .durable_object(BINDING)
            .and_then(|ns| ns.id_from_name(client_id)?.get_stub())
            .map_err(unavailable)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let request = Request::new_with_init(&format!("https://counter{path}"), &init)
            .map_err(unavailable)?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(unavailable)?;
        if response.status_code() != 200 {
            return Err(StoreError::Unavailable(format!(
                "counter Durable Object answered {}",
                response.status_code()
            )));
        }
        response.json().await.map_err(unavailable)
    }
}

impl CounterStore for DoCounterStore<'_> {
    async fn acquire(
        &self,
        client_id: &str,
        bumps: &[Bump],
    ) -> std::result::Result<Acquired, StoreError> {
        self.call("/acquire", client_id, bumps).await
    }

    async fn peek(
        &self,
        client_id: &str,
        bumps: &[Bump],
    ) -> std::result::Result<[u64; 3], StoreError> {
        if bumps.is_empty() {
            return Ok([0; 3]);
        }
        Ok(self.call("/peek", client_id, bumps).await?.counts)
    }

    async fn reset(&self, client_id: &str, bumps: &[Bump]) -> std::result::Result<(), StoreError> {
        if bumps.is_empty() {
            return Ok(());
        }
        self.call("/reset", client_id, bumps).await.map(|_| ())
    }
}
