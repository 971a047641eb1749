//! A lossy network between QUIC peers.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A UDP proxy between QUIC peers that loses and delays datagrams: `loss` of them (0.0 to
/// 1.0) are dropped, and a fifth of the rest are held back 5 to 40 ms (so some overtake
/// others). Each client address gets its own upstream socket. Stops when dropped.
#[derive(Debug)]
pub struct LossyProxy {
    /// Where clients send.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Datagrams dropped so far, either way.
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
    /// Datagrams passed on so far, either way.
    pub passed: Arc<std::sync::atomic::AtomicU64>,
}

impl LossyProxy {
    /// Listen on an ephemeral port of 127.0.0.1 and forward to `upstream`.
    pub async fn start(upstream: SocketAddr, loss: f64) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering::Relaxed;
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let passed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (d, p) = (dropped.clone(), passed.clone());
        // Decide a datagram's fate: None to drop, or how long to hold it.
        let fate = move |d: &std::sync::atomic::AtomicU64, p: &std::sync::atomic::AtomicU64| {
            use crypto::rand::RngExt as _;
            let mut rng = crypto::rand::rng();
            if rng.random_bool(loss) {
                d.fetch_add(1, Relaxed);
                return None;
            }
            p.fetch_add(1, Relaxed);
            Some(if rng.random_bool(0.2) {
                Duration::from_millis(rng.random_range(5..40))
            } else {
                Duration::ZERO
            })
        };
        let task = tokio::spawn(async move {
            let mut upstreams: std::collections::HashMap<SocketAddr, Arc<tokio::net::UdpSocket>> =
                std::collections::HashMap::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, client)) = front.recv_from(&mut buf).await else {
                    return;
                };
                let up = match upstreams.get(&client) {
                    Some(up) => up.clone(),
                    None => {
                        let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
                            continue;
                        };
                        let up = Arc::new(socket);
                        if up.connect(upstream).await.is_err() {
                            continue;
                        }
                        upstreams.insert(client, up.clone());
                        // Answers from upstream go back to this client, with the same fate.
                        let (front, up2, d, p) = (front.clone(), up.clone(), d.clone(), p.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            while let Ok(n) = up2.recv(&mut buf).await {
                                let Some(hold) = fate(&d, &p) else { continue };
                                let datagram = buf[..n].to_vec();
                                let front = front.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(hold).await;
                                    let _ = front.send_to(&datagram, client).await;
                                });
                            }
                        });
                        up
                    }
                };
                let Some(hold) = fate(&d, &p) else { continue };
                let datagram = buf[..n].to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    let _ = up.send(&datagram).await;
                });
            }
        });
        Ok(Self {
            addr,
            task,
            dropped,
            passed,
        })
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
