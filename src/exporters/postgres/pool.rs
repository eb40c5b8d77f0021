//! A small connection pool: at most `size` connections, idle ones reused, broken ones dropped
//! and replaced on the next checkout. The first connection runs the migrations (when
//! `create_tables`); every connection gets its own staging table.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};
use tokio_postgres::{Client, Config, NoTls};

use super::schema;

pub struct Pool {
    config: Config,
    schema: String,
    create_tables: bool,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    migrated: OnceCell<()>,
}

pub struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Conn<'_> {
    pub fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(c);
            }
        }
    }
}

impl Pool {
    pub fn new(
        mut config: Config,
        schema: &str,
        create_tables: bool,
        size: usize,
        connect_timeout: Duration,
    ) -> Pool {
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("spangate");
        }
        Pool {
            config,
            schema: schema.to_string(),
            create_tables,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
            migrated: OnceCell::new(),
        }
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub async fn get(&self) -> Result<Conn<'_>, tokio_postgres::Error> {
        let permit = self.permits.acquire().await.expect("the pool never closes");
        let reused = loop {
            let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match c {
                Some(c) if c.is_closed() => continue,
                other => break other,
            }
        };
        let client = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (mut client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        if self.create_tables {
            self.migrated
                .get_or_try_init(|| async {
                    let applied = schema::migrate(&mut client, &self.schema).await?;
                    if applied > 0 {
                        tracing::info!(schema = %self.schema, applied, "postgres migrations applied");
                    }
                    Ok::<_, tokio_postgres::Error>(())
                })
                .await?;
        }
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE spangate_stage (LIKE {}.spans) ON COMMIT DELETE ROWS",
                schema::quote(&self.schema)
            ))
            .await?;
        Ok(client)
    }
}
