//! What decoding one `message` event into its request costs, both ways: through a `Value`
//! tree (`Packet::decode`, then `serde_json::from_value`, the server's path before issue 21)
//! and straight from the text (`Incoming::decode`, then `JsonArgs::parse`, its path now).
//!
//! `cargo run --release -p chat-protocol --example event_decode [ROUNDS] [ITERATIONS] [MODE]`
//! times ITERATIONS decodes of each way per round, the ways alternating, and prints ns per
//! event for each round and the medians' ratio. MODE `value` or `text` runs only that way
//! (for `valgrind --tool=callgrind`, which counts the instructions exactly).

use std::hint::black_box;
use std::time::Instant;

use chat_protocol::events::MessageRequest;
use chat_protocol::socket_io::{Incoming, Packet};
use serde_json::Value;

/// A typical chat message as its Socket.IO text (after the Engine.IO `4`): with an ack id, a
/// room, a 60-character text and a client id.
const EVENT: &str = r#"217["message",{"room":"lobby","text":"hello everyone, this is a message of about sixty chars","cid":"k3x9-000017"}]"#;

fn through_value(text: &str) -> MessageRequest {
    let packet = Packet::decode(text).expect("decodes");
    let Some(Value::Array(args)) = packet.data else {
        panic!("an event");
    };
    let arg = args.into_iter().nth(1).unwrap_or(Value::Null);
    serde_json::from_value(arg).expect("a request")
}

fn from_text(text: &str) -> MessageRequest {
    let Ok(Incoming::Event(event)) = Incoming::decode(text) else {
        panic!("an event");
    };
    event.args.parse(0).expect("a request")
}

fn time(way: fn(&str) -> MessageRequest, iterations: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(way(black_box(EVENT)));
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let iterations: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let mode = args.next().unwrap_or_default();
    assert_eq!(through_value(EVENT), from_text(EVENT));
    let only = match mode.as_str() {
        "value" => Some(through_value as fn(&str) -> MessageRequest),
        "text" => Some(from_text as fn(&str) -> MessageRequest),
        _ => None,
    };
    if let Some(way) = only {
        println!("{mode}: {:.1} ns", time(way, iterations));
        return;
    }
    let (mut value, mut text) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The order swapped every round.
        if round % 2 == 0 {
            value.push(time(through_value, iterations));
            text.push(time(from_text, iterations));
        } else {
            text.push(time(from_text, iterations));
            value.push(time(through_value, iterations));
        }
        println!(
            "round {round}: value {:.1} ns, text {:.1} ns",
            value[round], text[round]
        );
    }
    let (v, t) = (median(value), median(text));
    println!(
        "median: value {v:.1} ns, text {t:.1} ns, text/value {:.3}",
        t / v
    );
}
