//! A minimal Redis client (RESP2 over one TCP connection) for the Redis
//! floors: nothing between the benchmark and the socket but the protocol.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Redis {
    conn: BufReader<TcpStream>,
    buf: Vec<u8>,
    line: Vec<u8>,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `REDIS_URL` (`redis://host:port[/db]`) or 127.0.0.1:6379.
pub fn address() -> String {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let rest = url.trim_start_matches("redis://");
            let hostport = rest.rsplit('@').next().unwrap_or(rest);
            hostport.split('/').next().unwrap_or(hostport).to_string()
        }
        Err(_) => "127.0.0.1:6379".to_string(),
    }
}

impl Redis {
    /// Connects and checks the server answers PING within a second.
    pub async fn connect(addr: &str) -> Result<Redis, Error> {
        let stream =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await??;
        stream.set_nodelay(true)?;
        let mut r = Redis {
            conn: BufReader::new(stream),
            buf: Vec::with_capacity(512),
            line: Vec::with_capacity(64),
        };
        let pong = tokio::time::timeout(Duration::from_secs(1), r.command(&[b"PING"])).await??;
        if pong.as_deref() != Some(b"PONG".as_slice()) {
            return Err("no PONG".into());
        }
        Ok(r)
    }

    /// Sends one command and reads its reply: a simple or bulk string (None
    /// for a nil bulk string); an error reply is an error.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Option<Vec<u8>>, Error> {
        self.buf.clear();
        self.buf
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.buf
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.buf.extend_from_slice(a);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&self.buf).await?;
        self.line.clear();
        self.conn.read_until(b'\n', &mut self.line).await?;
        let line = self.line.strip_suffix(b"\r\n").ok_or("truncated reply")?;
        match line.first() {
            Some(b'+') | Some(b':') => Ok(Some(line[1..].to_vec())),
            Some(b'-') => Err(String::from_utf8_lossy(&line[1..]).into_owned().into()),
            Some(b'$') => {
                let n: i64 = std::str::from_utf8(&line[1..])?.parse()?;
                if n < 0 {
                    return Ok(None);
                }
                let mut v = vec![0u8; n as usize + 2];
                self.conn.read_exact(&mut v).await?;
                v.truncate(n as usize);
                Ok(Some(v))
            }
            _ => Err("unexpected reply type".into()),
        }
    }

    /// The server's `INFO server` field `name`.
    pub async fn info_field(&mut self, name: &str) -> Option<String> {
        let info = self.command(&[b"INFO", b"server"]).await.ok()??;
        let info = String::from_utf8_lossy(&info).into_owned();
        info.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
    }
}
