//! Helpers for the client's integration tests: an in-process server, a headless client
//! driven line by line, and a TCP proxy that can cut connections.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_client::app::App;
use chat_client::net::{self, NetConfig};
use chat_client::script::{self, ScriptSource};
use chat_client::theme::Theme;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// How long a test waits for anything before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A server on a free port, with the given declared namespaces.
pub async fn start_server(namespaces: &[(&str, Option<&str>)]) -> chat_server::RunningServer {
    start_server_at("127.0.0.1:0".parse().expect("addr"), namespaces).await
}

pub async fn start_server_at(
    addr: SocketAddr,
    namespaces: &[(&str, Option<&str>)],
) -> chat_server::RunningServer {
    start_server_with(addr, namespaces, |_| {}).await
}

/// A server whose config `tweak` may change (ping interval, ...).
pub async fn start_server_with(
    addr: SocketAddr,
    namespaces: &[(&str, Option<&str>)],
    tweak: impl FnOnce(&mut chat_server::ServerConfig),
) -> chat_server::RunningServer {
    // Read through the config file's own format, so fields the server adds later keep
    // their defaults here.
    let namespaces = namespaces
        .iter()
        .map(|(name, key)| {
            let mut table = toml::Table::new();
            table.insert("name".into(), toml::Value::String((*name).to_owned()));
            if let Some(key) = key {
                table.insert("key".into(), toml::Value::String((*key).to_owned()));
            }
            table.try_into().expect("namespace config")
        })
        .collect();
    let mut config = chat_server::ServerConfig {
        listen: addr,
        namespaces,
        ..chat_server::ServerConfig::default()
    };
    tweak(&mut config);
    chat_server::start(config).await.expect("start server")
}

/// Output shared between the script runner and the test.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A headless client (the real script runner) fed line by line.
pub struct Client {
    pub name: String,
    tx: Option<mpsc::UnboundedSender<String>>,
    out: SharedBuf,
    task: JoinHandle<anyhow::Result<bool>>,
}

impl Client {
    pub fn start(server: &str, nick: &str, namespaces: &[(&str, Option<&str>)]) -> Client {
        Client::start_with(server, nick, namespaces, None)
    }

    /// Like [`Client::start`], with the nick's password in the CONNECT auth.
    pub fn start_with(
        server: &str,
        nick: &str,
        namespaces: &[(&str, Option<&str>)],
        password: Option<&str>,
    ) -> Client {
        let mut config = NetConfig::new(server, nick);
        config.password = password.map(str::to_owned);
        Client::start_config(config, namespaces)
    }

    /// Like [`Client::start`], with a network configuration of the test's own (its reconnect
    /// delays shortened to 100-500 ms).
    pub fn start_config(mut config: NetConfig, namespaces: &[(&str, Option<&str>)]) -> Client {
        config.backoff_base = Duration::from_millis(100);
        config.backoff_cap = Duration::from_millis(500);
        Client::start_exactly(config, namespaces)
    }

    /// Like [`Client::start_config`], with the configuration's reconnect delays as they are.
    pub fn start_exactly(config: NetConfig, namespaces: &[(&str, Option<&str>)]) -> Client {
        let (server, nick) = (config.server.clone(), config.nick.clone());
        let (server, nick) = (server.as_str(), nick.as_str());
        let (net, net_rx, _task) = net::spawn(config);
        let namespaces: Vec<(String, Option<String>)> = namespaces
            .iter()
            .map(|(n, k)| ((*n).to_owned(), k.map(str::to_owned)))
            .collect();
        let app = App::new(server, nick, &namespaces, Theme::dark());
        let (tx, rx) = mpsc::unbounded_channel();
        let out = SharedBuf::default();
        let mut writer = out.clone();
        let task = tokio::spawn(async move {
            script::run(
                app,
                net,
                net_rx,
                ScriptSource::Channel(rx),
                Duration::from_secs(5),
                &mut writer,
            )
            .await
        });
        Client {
            name: nick.to_owned(),
            tx: Some(tx),
            out,
            task,
        }
    }

    pub fn line(&self, line: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(line.to_owned());
        }
    }

    pub fn output(&self) -> String {
        self.out.text()
    }

    /// Waits until the output shows `text` (not counting the echoed script lines).
    pub async fn wait_for(&self, text: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let out = self.output();
            if out
                .lines()
                .any(|l| !l.starts_with("> ") && l.contains(text))
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{}: no line with {text:?} in:\n{out}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the script (end of input) and returns its outcome and output.
    pub async fn finish(mut self) -> (bool, String) {
        self.tx = None;
        let ok = match tokio::time::timeout(DEADLINE, &mut self.task).await {
            Ok(Ok(Ok(ok))) => ok,
            other => panic!("{}: script did not end cleanly: {other:?}", self.name),
        };
        (ok, self.out.text())
    }
}

/// A TCP proxy in front of the server: `cut()` drops every proxied connection, and while
/// paused new connections are closed at once; `freeze()` makes the open connections go
/// silent (nothing forwarded, nothing closed).
pub struct Proxy {
    pub addr: SocketAddr,
    kill: broadcast::Sender<()>,
    freeze: broadcast::Sender<()>,
    paused: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (kill, _) = broadcast::channel(4);
        let (freeze, _) = broadcast::channel(4);
        let paused = Arc::new(AtomicBool::new(false));
        let (kill2, freeze2, paused2) = (kill.clone(), freeze.clone(), paused.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if paused2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut kill_rx = kill2.subscribe();
                let mut freeze_rx = freeze2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = kill_rx.recv() => {}
                        _ = freeze_rx.recv() => {
                            // Hold both sockets open and say nothing, until cut or dropped.
                            let _ = kill_rx.recv().await;
                        }
                    }
                    drop((inbound, outbound));
                });
            }
        });
        Proxy {
            addr,
            kill,
            freeze,
            paused,
            task,
        }
    }

    /// Drops every open connection and refuses new ones until [`Proxy::resume`].
    pub fn cut(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let _ = self.kill.send(());
    }

    /// The open connections stop forwarding but stay open; new ones work.
    pub fn freeze(&self) {
        let _ = self.freeze.send(());
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A scripted Engine.IO peer for tests that play the server by hand: accepts one WebSocket
/// on `listener` and sends the open packet.
pub async fn scripted_peer(listener: TcpListener) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    use futures_util::SinkExt;
    let (tcp, _) = listener.accept().await.expect("the client connects");
    let mut ws = tokio_tungstenite::accept_async(tcp)
        .await
        .expect("a WebSocket");
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
    ))
    .await
    .expect("the open packet sent");
    ws
}

/// The client's next text frame (other frames skipped), within 20 s.
pub async fn next_text(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> String {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            return text.as_str().to_owned();
        }
    }
}
