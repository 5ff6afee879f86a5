//! `swarmmq produce`: publish from flags, a file, or stdin lines.

use std::collections::VecDeque;
use std::io::Write;

use anyhow::{Context, bail};
use bytes::Bytes;
use swarmmq_client::{
    E2eKey, Message, MessageId, Producer, ProducerConfig, Receipt, ReceiptFuture,
};
use swarmmq_types::Priority;
use tokio::io::AsyncBufReadExt;

use crate::cli::{ProduceArgs, ProduceFormat};

/// Receipts awaited behind the sender, so memory stays bounded on endless stdin.
const MAX_OUTSTANDING: usize = 100_000;

struct Template {
    id: Option<MessageId>,
    key: Option<Bytes>,
    priority: Priority,
    headers: Vec<(String, Bytes)>,
    delay: Option<std::time::Duration>,
    ttl: Option<std::time::Duration>,
}

impl Template {
    fn message(&self, payload: Bytes) -> Message {
        let mut m = Message::new(payload).with_priority(self.priority);
        if let Some(id) = &self.id {
            m = m.with_id(id.clone());
        }
        if let Some(k) = &self.key {
            m = m.with_key(k.clone());
        }
        for (n, v) in &self.headers {
            m = m.with_header(n.clone(), v.clone());
        }
        if let Some(d) = self.delay {
            m = m.with_delay(d);
        }
        if let Some(t) = self.ttl {
            m = m.with_ttl(t);
        }
        m
    }
}

struct Sink {
    format: ProduceFormat,
    pending: VecDeque<ReceiptFuture>,
    out: std::io::BufWriter<std::io::Stdout>,
    sent: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Sink {
    async fn settle_one(&mut self) -> anyhow::Result<()> {
        let Some(fut) = self.pending.pop_front() else {
            return Ok(());
        };
        match fut.await {
            Ok(r) => self.print(&r)?,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        Ok(())
    }

    fn print(&mut self, r: &Receipt) -> anyhow::Result<()> {
        if self.format == ProduceFormat::Json {
            let line = serde_json::json!({
                "id": r.id.as_ref().map(|i| i.to_string()),
                "partition": r.partition,
                "offset": r.offset,
                "duplicate": r.duplicate,
            });
            writeln!(self.out, "{line}").context("cannot write to stdout")?;
        }
        Ok(())
    }
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut headers = Vec::new();
    for h in &args.headers {
        let Some((n, v)) = h.split_once('=') else {
            bail!("header {h:?} is not NAME=VALUE");
        };
        headers.push((n.to_string(), Bytes::from(v.to_string())));
    }
    let template = Template {
        id: args
            .id
            .as_deref()
            .map(MessageId::parse)
            .transpose()
            .context("invalid --id")?,
        key: args.key.clone().map(Bytes::from),
        priority: Priority::new(args.priority)?,
        headers,
        delay: args.delay,
        ttl: args.ttl,
    };
    let fixed: Option<Bytes> = match (&args.message, &args.file) {
        (Some(m), _) => Some(Bytes::from(m.clone())),
        (None, Some(f)) => Some(Bytes::from(
            std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
        )),
        (None, None) => None,
    };
    let mut config = ProducerConfig::default().smart(args.smart);
    if let Some(path) = &args.e2e_key {
        config.e2e_key = Some(std::sync::Arc::new(E2eKey::from_file(path)?));
    }
    let producer = Producer::connect(args.target.connect_options()?, config)
        .await
        .with_context(|| format!("cannot reach a node at {}", args.target.node))?;
    let mut sink = Sink {
        format: args.format,
        pending: VecDeque::new(),
        out: std::io::BufWriter::new(std::io::stdout()),
        sent: 0,
        failed: 0,
        first_error: None,
    };
    let dest = args.destination.as_str();
    match fixed {
        Some(payload) => {
            for _ in 0..args.count {
                let fut = producer
                    .send(dest, template.message(payload.clone()))
                    .await?;
                sink.pending.push_back(fut);
                sink.sent += 1;
                if sink.pending.len() >= MAX_OUTSTANDING {
                    sink.settle_one().await?;
                }
            }
        }
        None => {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Some(line) = lines.next_line().await.context("cannot read stdin")? {
                let fut = producer
                    .send(dest, template.message(Bytes::from(line)))
                    .await?;
                sink.pending.push_back(fut);
                sink.sent += 1;
                if sink.pending.len() >= MAX_OUTSTANDING {
                    sink.settle_one().await?;
                }
            }
        }
    }
    producer.flush().await.ok();
    while !sink.pending.is_empty() {
        sink.settle_one().await?;
    }
    sink.out.flush().context("cannot write to stdout")?;
    let _ = producer.close().await;
    if sink.failed > 0 {
        bail!(
            "{} of {} messages were not acknowledged: {}",
            sink.failed,
            sink.sent,
            sink.first_error.unwrap_or_default()
        );
    }
    Ok(())
}
