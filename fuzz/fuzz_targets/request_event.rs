//! A request event's JSON, written by hand from whatever a client sent:
//! it always parses, and every string reads back as it was (no field can
//! be forged from inside another).
#![no_main]
use std::sync::Arc;

use komainu_core::events::{Durations, Event, EventData, Identity, RequestEvent};
use komainu_core::gateway::{RequestId, TraceContext};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Up to five strings, split where no UTF-8 text has 0xff.
    let mut parts = data
        .split(|&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let mut next = || parts.next().unwrap_or_default();
    let (host, path, route, name, client) = (next(), next(), next(), next(), next());
    let id = RequestId::from_random(7);
    let refused = data.first().is_some_and(|b| b & 1 == 1);
    let identity = if refused {
        Identity::Refused {
            client_id: client.clone(),
        }
    } else {
        Identity::Key {
            client_id: Arc::from(client.as_str()),
            name: Arc::from(name.as_str()),
        }
    };
    let event = Event {
        id,
        time_ms: 1_764_756_000_123,
        data: EventData::Request(Box::new(RequestEvent {
            request_id: id,
            route_id: Some(Arc::from(route.as_str())),
            route_name: Some(Arc::from(name.as_str())),
            identity: Some(identity),
            method: None,
            host: host.clone(),
            path: path.clone(),
            status: 200,
            error: None,
            blame: None,
            client_ip: None,
            bytes_in: data.len() as u64,
            bytes_out: 0,
            attempts: 1,
            durations: Durations {
                total_us: data.len() as u64 * 997,
                backend_us: None,
                overhead_us: 3,
            },
            quotas: None,
            quota_unchecked: false,
            trace: TraceContext::continue_or_start(None, 7),
        })),
    };
    let json = event.to_cloudevent(&path);
    assert!(!json.contains('\n'), "one line");
    let v: serde_json::Value = serde_json::from_str(&json).expect("the event parses");
    assert_eq!(v["source"], path.as_str());
    assert_eq!(v["subject"], route.as_str());
    let d = &v["data"];
    assert_eq!(d["host"], host.as_str());
    assert_eq!(d["path"], path.as_str());
    assert_eq!(d["routeId"], route.as_str());
    assert_eq!(d["routeName"], name.as_str());
    assert_eq!(d["identity"]["clientId"], client.as_str());
    assert_eq!(d["identity"]["type"], if refused { "refused" } else { "key" });
    assert_eq!(d["status"], 200);
    assert_eq!(d["bytesIn"], data.len() as u64);
});
