//! The SDK against an in-process node serving mutual TLS: produce and consume, the
//! refusals a client sees, and a producer that reconnects with the same TLS options.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::*;
use swarmmq_client::{
    Admin, ClientError, ConnectOptions, Consumer, ConsumerConfig, ErrorCode, Message, Producer,
    ProducerConfig, TlsOptions,
};
use swarmmq_server::tls::TlsFiles;

struct Pki {
    ca: PathBuf,
    node: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let leaf = |name: &str, sans: Vec<String>| {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    };
    Pki {
        ca: dir.join("ca.pem"),
        node: leaf("node", vec!["127.0.0.1".into(), "localhost".into()]),
        client: leaf("app-1", vec![]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_speaks_mutual_tls_and_reconnects_with_the_same_options() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let files = TlsFiles {
        cert: pki.node.0.clone(),
        key: pki.node.1.clone(),
        ca: Some(pki.ca.clone()),
    };
    let data = dir.path().join("data");
    let node = start(&data, |s| s.tls = Some(files.clone())).await;
    let addr = node.client_addr();
    let options = ConnectOptions::new(addr.to_string())
        .with_tls(TlsOptions::new(&pki.ca).with_client_cert(&pki.client.0, &pki.client.1));

    let admin = Admin::connect(&options).await.unwrap();
    admin.health().await.unwrap();
    let producer = Producer::connect(&options, ProducerConfig::default())
        .await
        .unwrap();
    producer
        .send("t", Message::new("first"))
        .await
        .unwrap()
        .await
        .unwrap();

    // Plain TCP: the node answers with a notice the client reports at once.
    let plain = Admin::connect(addr.to_string()).await.unwrap();
    let err = plain.health().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest), "{err}");
    assert!(err.to_string().contains("requires TLS"), "{err}");
    assert!(!err.is_retriable());
    // TLS without a client certificate: refused, and not worth retrying.
    let anonymous = ConnectOptions::new(addr.to_string()).with_tls(TlsOptions::new(&pki.ca));
    let err = match Admin::connect(&anonymous).await {
        Ok(a) => a.health().await.unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");

    // The node restarts on the same port: the producer's retry reconnects with TLS.
    node.shutdown();
    node.wait().await.unwrap();
    let pending = tokio::spawn(async move {
        let receipt = producer.send("t", Message::new("second")).await?;
        let r = receipt.await;
        producer.close().await?;
        r
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = start(&data, |s| {
        s.tls = Some(files.clone());
        s.client_addr = addr;
    })
    .await;
    let receipt = pending.await.unwrap().unwrap();
    assert_eq!(receipt.offset, 1);

    let mut c = ConsumerConfig::new("t", "g");
    c.max_wait = Duration::from_millis(200);
    let mut consumer = Consumer::connect(options.clone(), c).await.unwrap();
    let got: Vec<_> = consumer
        .pull()
        .await
        .unwrap()
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    assert_eq!(got, vec!["first".as_bytes(), "second".as_bytes()]);
    consumer.close().await.unwrap();
    node.shutdown();
    node.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let mut settings = swarmmq_server::NodeSettings::for_test(dir.path().join("data"));
    settings.tls = Some(TlsFiles {
        cert: pki.node.0.clone(),
        key: pki.client.1.clone(),
        ca: None,
    });
    let err = swarmmq_server::Node::start(settings).await.err().unwrap();
    assert!(err.to_string().starts_with("TLS: "), "{err}");
    assert!(err.to_string().contains("do not form a usable"), "{err}");
}
