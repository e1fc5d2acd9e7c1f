//! Amounts added up across processes, per name and period (the gateway's spend per key).

use redis::AsyncCommands;

use nova_llm_core::LlmError;

use crate::connection::RedisConnection;

/// Sums shared by every process on one Redis: each `(name, period)` is one float counter
/// (`INCRBYFLOAT`), kept for two periods after its last addition so an old period's
/// counter goes by itself. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisTally {
    conn: RedisConnection,
    prefix: String,
}

impl RedisTally {
    /// Counters under the prefix `nova:tally:`.
    pub fn new(conn: RedisConnection) -> Self {
        RedisTally {
            conn,
            prefix: "nova:tally:".into(),
        }
    }

    /// Another key prefix (to keep several deployments on one Redis apart).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, name: &str, period: u64) -> String {
        format!("{}{name}:{period}", self.prefix)
    }

    /// The sum of `name` in `period` (0 when nothing was added).
    ///
    /// # Errors
    /// Redis unreachable or too slow.
    pub async fn get(&self, name: &str, period: u64) -> Result<f64, LlmError> {
        let key = self.key(name, period);
        let v: Option<f64> = self
            .conn
            .run("GET", |mut c| async move { c.get(key).await })
            .await?;
        Ok(v.unwrap_or(0.0))
    }

    /// Adds `amount` to `name` in `period`, which lasts `period_secs`; returns the new sum.
    ///
    /// # Errors
    /// Redis unreachable or too slow.
    pub async fn add(
        &self,
        name: &str,
        period: u64,
        period_secs: u64,
        amount: f64,
    ) -> Result<f64, LlmError> {
        let key = self.key(name, period);
        let keep = i64::try_from(period_secs.saturating_mul(2)).unwrap_or(i64::MAX);
        self.conn
            .run("INCRBYFLOAT", |mut c| async move {
                let (sum, _): (f64, bool) = redis::pipe()
                    .atomic()
                    .incr(&key, amount)
                    .expire(&key, keep)
                    .query_async(&mut c)
                    .await?;
                Ok(sum)
            })
            .await
    }
}
