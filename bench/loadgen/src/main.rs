//! `loadgen`: sends HTTP/1.1 requests at a fixed total rate over keep-alive
//! connections and reports latency percentiles corrected for coordinated
//! omission: each request's latency counts from when it was *due*, not from
//! when a busy connection got round to sending it.
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080/x --rate 20000 --connections 64 --duration 10 \
//!         [--header 'Name: value']...
//! ```
//!
//! When a connection was idle at the due time, the timer's own lateness
//! (tokio's timer has a 1 ms grain) is the generator's, not the server's:
//! latency then counts from the actual send.
//!
//! Prints one JSON object: rate asked and achieved, counts by status,
//! errors, and p50/p90/p99/p99.9/max in microseconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Args {
    url: Uri,
    rate: f64,
    connections: usize,
    duration: Duration,
    headers: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut rate, mut connections, mut duration, mut headers) =
        (None, 1000.0, 64usize, 10.0, Vec::new());
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?.parse::<Uri>().map_err(|e| e.to_string())?),
            "--rate" => {
                rate = value()?
                    .parse()
                    .map_err(|_| "--rate takes requests per second")?
            }
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|_| "--connections takes a number")?
            }
            "--duration" => duration = value()?.parse().map_err(|_| "--duration takes seconds")?,
            "--header" => {
                let h = value()?;
                let (k, v) = h.split_once(':').ok_or("--header takes 'Name: value'")?;
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    if rate <= 0.0 || connections == 0 {
        return Err("--rate and --connections must be positive".into());
    }
    Ok(Args {
        url,
        rate,
        connections,
        duration: Duration::from_secs_f64(duration),
        headers,
    })
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    by_status: std::collections::BTreeMap<u16, u64>,
    errors: u64,
}

async fn connection(args: std::sync::Arc<Args>, index: usize, start: Instant) -> Tally {
    let mut tally = Tally::default();
    let authority = args
        .url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
    // Spread the connections' schedules evenly over one interval.
    let offset = interval.mul_f64(index as f64 / args.connections as f64);
    let mut sender = None;
    let mut n: u32 = 0;
    let mut free_since = start;
    loop {
        let due = start + offset + interval * n;
        if due.duration_since(start) >= args.duration {
            break;
        }
        n += 1;
        tokio::time::sleep_until(due.into()).await;
        // Busy past the due time: the server's delay, counted from `due`.
        // Idle at the due time: count from now (the timer's lateness is ours).
        let counted_from = if free_since > due {
            due
        } else {
            Instant::now()
        };
        if sender.is_none() {
            match TcpStream::connect(&authority).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(
                        stream,
                    ))
                    .await
                    {
                        Ok((s, conn)) => {
                            tokio::spawn(conn);
                            sender = Some(s);
                        }
                        Err(_) => {
                            tally.errors += 1;
                            continue;
                        }
                    }
                }
                Err(_) => {
                    tally.errors += 1;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let mut req = Request::get(args.url.path_and_query().map_or("/", |p| p.as_str()))
            .header("host", &authority);
        for (k, v) in &args.headers {
            req = req.header(k, v);
        }
        let Ok(req) = req.body(Empty::new()) else {
            tally.errors += 1;
            continue;
        };
        match s.send_request(req).await {
            Ok(response) => {
                let status = response.status().as_u16();
                if response.into_body().collect().await.is_err() {
                    tally.errors += 1;
                    sender = None;
                    continue;
                }
                free_since = Instant::now();
                let latency = counted_from.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latencies_us.push(latency);
                *tally.by_status.entry(status).or_default() += 1;
            }
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
    tally
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = match parse_args() {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        eprintln!("loadgen: cannot start the runtime");
        std::process::exit(1);
    };
    let (tally, elapsed) = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(50);
        let tasks: Vec<_> = (0..args.connections)
            .map(|i| tokio::spawn(connection(args.clone(), i, start)))
            .collect();
        let mut total = Tally::default();
        for t in tasks {
            if let Ok(t) = t.await {
                total.latencies_us.extend(t.latencies_us);
                for (s, c) in t.by_status {
                    *total.by_status.entry(s).or_default() += c;
                }
                total.errors += t.errors;
            }
        }
        (total, start.elapsed())
    });
    let mut lat = tally.latencies_us;
    lat.sort_unstable();
    let statuses: serde_json::Map<String, serde_json::Value> = tally
        .by_status
        .iter()
        .map(|(s, c)| (s.to_string(), (*c).into()))
        .collect();
    let report = serde_json::json!({
        "rateAsked": args.rate,
        "rateAchieved": lat.len() as f64 / elapsed.as_secs_f64(),
        "requests": lat.len(),
        "statuses": statuses,
        "errors": tally.errors,
        "p50Us": percentile(&lat, 50.0),
        "p90Us": percentile(&lat, 90.0),
        "p99Us": percentile(&lat, 99.0),
        "p999Us": percentile(&lat, 99.9),
        "maxUs": lat.last().copied().unwrap_or(0),
    });
    println!("{report}");
}
