//! The storage that bulk operation results are downloaded from. On Shopify a result `url` is a
//! signed link to cloud storage on another host, fetched with a plain GET and no access token;
//! here it is a second listener of the sandbox, started with the first completed operation.
//!
//! A result file is generated while it is sent ([`Export::write`] on a blocking thread, a few
//! pieces buffered), so a 100 MB export costs the sandbox no more memory than a small one. The
//! listener is a minimal HTTP/1.1 responder (one GET per connection, `Content-Length`, then
//! close): axum's body types cannot be fed from a generator without a stream crate, and the
//! workspace's tokio has no `io-util`, so reads and writes wait for readiness themselves.

use std::io::ErrorKind;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::bulk::{Export, PIECE_BYTES};
use crate::state::AppState;

/// The bucket-like first path segment of every result URL.
const BUCKET: &str = "shopify-tiers-assets-sandbox";
/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Pieces generated ahead of the socket.
const AHEAD: usize = 4;

/// The storage endpoint's base URL (`http://127.0.0.1:{port}/{bucket}`), starting it on first
/// use. `None` only if no local port can be bound.
pub fn ensure_started(st: &Arc<AppState>) -> Option<String> {
    let mut store = st.shopify();
    if let Some(base) = &store.storage_base {
        return Some(base.clone());
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std);
    let listener = match listener {
        Ok(l) => l,
        Err(err) => {
            tracing::error!(error = %err, "could not start the bulk result storage endpoint");
            return None;
        }
    };
    let base = format!("http://{}/{BUCKET}", listener.local_addr().ok()?);
    store.storage_base = Some(base.clone());
    tokio::spawn(accept(listener, Arc::downgrade(st)));
    Some(base)
}

/// Serves connections until the sandbox's state is gone.
async fn accept(listener: TcpListener, state: Weak<AppState>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else {
                    // Out of file descriptors and the like: breathe instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Some(st) = state.upgrade() else { return };
                tokio::spawn(async move {
                    if let Err(err) = serve(socket, st).await {
                        tracing::debug!(error = %err, "bulk result download ended early");
                    }
                });
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if state.strong_count() == 0 {
                    return;
                }
            }
        }
    }
}

/// The path of a GET request line, or `None` for anything else.
fn requested_path(head: &str) -> Option<&str> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.split('?').next().unwrap_or(target)),
        _ => None,
    }
}

async fn read_some(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        socket.readable().await?;
        match socket.try_read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_head(socket: &TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too long"));
        }
        let n = tokio::time::timeout(Duration::from_secs(10), read_some(socket, &mut buf))
            .await
            .map_err(|_| std::io::Error::other("request head timed out"))??;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the request",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn respond(socket: &TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    write_all(socket, head.as_bytes()).await?;
    write_all(socket, body.as_bytes()).await
}

/// The completed operation's export stored under `key`, with its size.
fn find(st: &AppState, key: &str) -> Option<(Arc<Export>, u64)> {
    let store = st.shopify();
    store
        .bulk_ops
        .values()
        .find(|op| op.object_key == key && op.status == "COMPLETED")
        .and_then(|op| Some((op.export.clone()?, op.file_size?)))
}

/// One request, then the connection closes (dropping the socket sends FIN).
async fn serve(socket: TcpStream, st: Arc<AppState>) -> std::io::Result<()> {
    let head = read_head(&socket).await?;
    let Some(path) = requested_path(&head) else {
        return respond(&socket, "405 Method Not Allowed", "").await;
    };
    let key = path
        .strip_prefix(&format!("/{BUCKET}/"))
        .and_then(|rest| rest.strip_suffix(".jsonl"));
    let Some((export, size)) = key.and_then(|key| find(&st, key)) else {
        let body = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        return respond(&socket, "404 Not Found", body).await;
    };
    drop(st);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/jsonl\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    write_all(&socket, head.as_bytes()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(AHEAD);
    // A client that goes away closes the channel, which stops the generator.
    let generator = tokio::task::spawn_blocking(move || {
        export.write(PIECE_BYTES, |piece| {
            tx.blocking_send(piece.to_vec()).is_ok()
        });
    });
    while let Some(piece) = rx.recv().await {
        write_all(&socket, &piece).await?;
    }
    let _ = generator.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::requested_path;

    #[test]
    fn only_get_requests_name_a_path() {
        assert_eq!(
            requested_path("GET /b/k.jsonl?Expires=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("/b/k.jsonl")
        );
        assert_eq!(requested_path("POST /b/k.jsonl HTTP/1.1\r\n\r\n"), None);
    }
}
