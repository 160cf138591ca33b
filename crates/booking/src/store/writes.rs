//! A transaction's deferred row writes ([`Writes`]): collected while its checks run and sent
//! at its end, one by one on SQLite, and on PostgreSQL as one statement where the rows of a
//! kind go as arrays ([`RowOp`]).

use evently_core::db::StoreError;
use uuid::Uuid;

/// A value of a deferred write.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
}

/// A write of one row that a batch repeats for many rows (a seat taken, an order placed…).
/// PostgreSQL sends every row of one kind in one statement over arrays, the same text
/// whatever the number of rows, so the server plans it once per connection instead of
/// planning a statement of hundreds of parts for every batch.
#[derive(Debug)]
pub(crate) struct RowOp {
    /// The write of one row, its columns `$1`… (as SQLite runs it, row by row).
    pub(crate) one: &'static str,
    /// The write of many rows, `$1`… an array of each column in the same order.
    pub(crate) many: &'static str,
}

/// A seat taken by a hold: event, hold, seat. `state + 0`: the seats are found by their key,
/// never through `seats_by_state`, which a planner may otherwise pick and walk every available
/// seat of the event.
pub(crate) static SEAT_HELD: RowOp = RowOp {
    one: "UPDATE seats SET state = 1, hold_id = $2 WHERE event_id = $1 AND seat_id = $3 \
          AND state + 0 = 0",
    many: "UPDATE seats AS s SET state = 1, hold_id = u.hold_id \
           FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u (event_id, hold_id, seat_id) \
           WHERE s.event_id = u.event_id AND s.seat_id = u.seat_id AND s.state + 0 = 0",
};

/// A new hold: id, event, buyer, seats (JSON), quantity, kind, created, expires.
pub(crate) static HOLD_INSERTED: RowOp = RowOp {
    one: "INSERT INTO holds (id, event_id, user_id, seat_ids, quantity, kind, status, \
          created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
    many: "INSERT INTO holds (id, event_id, user_id, seat_ids, quantity, kind, status, \
           created_at, expires_at) SELECT u.id, u.event_id, u.user_id, u.seat_ids, u.quantity, \
           u.kind, 'active', u.created_at, u.expires_at FROM unnest($1::uuid[], $2::uuid[], \
           $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[]) \
           AS u (id, event_id, user_id, seat_ids, quantity, kind, created_at, expires_at)",
};

/// The seats of a purchased hold sold to its order: hold, order.
pub(crate) static SEATS_SOLD: RowOp = RowOp {
    one: "UPDATE seats SET state = 2, order_id = $2, hold_id = NULL \
          WHERE hold_id = $1 AND state = 1",
    // Found through `seats_by_hold` by the list of holds: joined to the list instead, a
    // planner without statistics may walk the whole index (every hold since the last vacuum)
    // for each batch.
    many: "UPDATE seats AS s SET state = 2, hold_id = NULL, order_id = (SELECT u.order_id \
           FROM unnest($1::uuid[], $2::uuid[]) AS u (hold_id, order_id) \
           WHERE u.hold_id = s.hold_id) \
           WHERE s.hold_id = ANY($1::uuid[]) AND s.state = 1",
};

/// A new confirmed order: id, event, buyer, hold, intent, seats (JSON), quantity, amount,
/// currency, created.
pub(crate) static ORDER_INSERTED: RowOp = RowOp {
    one: "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
          quantity, amount, currency, status, created_at) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'confirmed', $10)",
    many: "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
           quantity, amount, currency, status, created_at) \
           SELECT u.id, u.event_id, u.user_id, u.hold_id, u.intent_id, u.seat_ids, u.quantity, \
           u.amount, u.currency, 'confirmed', u.created_at FROM unnest($1::uuid[], $2::uuid[], \
           $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::bigint[], $8::bigint[], \
           $9::text[], $10::bigint[]) AS u (id, event_id, user_id, hold_id, intent_id, \
           seat_ids, quantity, amount, currency, created_at)",
};

/// A payment intent paid at checkout, in its purchase's transaction: id, hold, event, payer,
/// amount, currency, when. Its secret hash is empty: no secret confirms it (it needs none).
pub(crate) static INTENT_PAID: RowOp = RowOp {
    one: "INSERT INTO payment_intents (id, hold_id, event_id, user_id, amount, currency, \
          secret_hash, status, created_at, updated_at) \
          VALUES ($1, $2, $3, $4, $5, $6, '', 'succeeded', $7, $7)",
    many: "INSERT INTO payment_intents (id, hold_id, event_id, user_id, amount, currency, \
           secret_hash, status, created_at, updated_at) \
           SELECT u.id, u.hold_id, u.event_id, u.user_id, u.amount, u.currency, '', \
           'succeeded', u.at, u.at FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], \
           $4::uuid[], $5::bigint[], $6::text[], $7::bigint[]) \
           AS u (id, hold_id, event_id, user_id, amount, currency, at)",
};

/// A new valid ticket: id, order, event, seat, code.
pub(crate) static TICKET_INSERTED: RowOp = RowOp {
    one: "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
          VALUES ($1, $2, $3, $4, $5, 'valid')",
    many: "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
           SELECT u.id, u.order_id, u.event_id, u.seat_id, u.code, 'valid' \
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[]) \
           AS u (id, order_id, event_id, seat_id, code)",
};

/// A hold ended by its purchase: hold, when.
pub(crate) static HOLD_PURCHASED: RowOp = RowOp {
    one: "UPDATE holds SET status = 'purchased', ended_at = $2 WHERE id = $1",
    many: "UPDATE holds AS h SET status = 'purchased', ended_at = u.ended_at \
           FROM unnest($1::uuid[], $2::bigint[]) AS u (id, ended_at) WHERE h.id = u.id",
};

/// A purchase's idempotency key completed with its answer (201): buyer, route, key, body.
pub(crate) static KEY_COMPLETED: RowOp = RowOp {
    one: "UPDATE idempotency_keys SET status = 'complete', response_status = 201, \
          response_body = $4 WHERE user_id = $1 AND route = $2 AND key = $3",
    many: "UPDATE idempotency_keys AS k SET status = 'complete', response_status = 201, \
           response_body = u.body FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
           AS u (user_id, route, key, body) \
           WHERE k.user_id = u.user_id AND k.route = u.route AND k.key = u.key",
};

/// One deferred write: a statement numbered `$1`… with its values, and the number of rows it
/// must change when that is known.
#[derive(Debug)]
pub(crate) struct Write {
    pub(crate) sql: std::borrow::Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
    pub(crate) expect: Option<u64>,
    /// The kind of row write it is, if it is one.
    pub(crate) op: Option<&'static RowOp>,
}

/// The writes of an inventory transaction that nothing reads before its end, sent together
/// with its outbox append: as one statement of data-modifying common-table expressions on
/// PostgreSQL (one round trip while the event is locked, instead of one per write), one after
/// another on the in-process SQLite connection. A transaction flushes them before any read
/// that could see what they change.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub(crate) parts: Vec<Write>,
}

/// What one statement sends: a write, or (`many`) all the rows of one [`RowOp`].
#[derive(Debug)]
pub(crate) struct Statement<'w> {
    pub(crate) sql: &'w str,
    pub(crate) writes: Vec<&'w Write>,
    pub(crate) many: bool,
}

impl Statement<'_> {
    /// Checks the number of rows the statement changed against what its writes expected
    /// (their sum, when every one of them knows).
    pub(crate) fn check(&self, changed: u64) -> Result<(), StoreError> {
        let expected: Option<u64> = self.writes.iter().map(|w| w.expect).sum();
        match expected {
            Some(expected) if expected != changed => Err(StoreError::Other(anyhow::anyhow!(
                "changed {changed} rows where {expected} were expected: {}",
                self.sql
            ))),
            _ => Ok(()),
        }
    }
}

impl Writes {
    pub(crate) fn push(
        &mut self,
        sql: impl Into<std::borrow::Cow<'static, str>>,
        args: Vec<Arg>,
        expect: Option<u64>,
    ) {
        self.parts.push(Write {
            sql: sql.into(),
            args,
            expect,
            op: None,
        });
    }

    /// Adds a row write of kind `op`, its columns `args`.
    pub(crate) fn push_row(&mut self, op: &'static RowOp, args: Vec<Arg>, expect: Option<u64>) {
        self.parts.push(Write {
            sql: op.one.into(),
            args,
            expect,
            op: Some(op),
        });
    }

    /// The statements that send the writes: one per write, or with `merge` one per kind of
    /// row write (in the order each kind first appears) after the other writes. A batch's
    /// writes all touch different rows, so in one statement their order does not matter.
    pub(crate) fn statements(&self, merge: bool) -> Vec<Statement<'_>> {
        let mut out: Vec<Statement<'_>> = Vec::with_capacity(self.parts.len());
        let mut kinds: Vec<Statement<'_>> = Vec::new();
        for write in &self.parts {
            match write.op {
                Some(op) if merge => {
                    match kinds.iter_mut().find(|k| std::ptr::eq(k.sql, op.many)) {
                        Some(kind) => kind.writes.push(write),
                        None => kinds.push(Statement {
                            sql: op.many,
                            writes: vec![write],
                            many: true,
                        }),
                    }
                }
                _ => out.push(Statement {
                    sql: &write.sql,
                    writes: vec![write],
                    many: false,
                }),
            }
        }
        out.extend(kinds);
        out
    }
}

/// `sql` with each `$n` renumbered `$n+offset`, to join statements into one.
pub(crate) fn shift_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n * 10 + v as usize;
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&(n + offset).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_writes_of_one_kind_merge_into_one_statement_and_are_checked_together() {
        let (hold, order) = (Uuid::now_v7(), Uuid::now_v7());
        let mut writes = Writes::default();
        writes.push_row(
            &SEATS_SOLD,
            vec![Arg::Uuid(hold), Arg::Uuid(order)],
            Some(2),
        );
        writes.push(
            "UPDATE inventories SET held = $1",
            vec![Arg::Int(0)],
            Some(1),
        );
        writes.push_row(
            &SEATS_SOLD,
            vec![Arg::Uuid(hold), Arg::Uuid(order)],
            Some(1),
        );
        writes.push_row(
            &KEY_COMPLETED,
            vec![
                Arg::Uuid(hold),
                Arg::Text("r".into()),
                Arg::Text("k".into()),
                Arg::Text("{}".into()),
            ],
            None,
        );

        let merged = writes.statements(true);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].sql, "UPDATE inventories SET held = $1");
        assert!(!merged[0].many);
        assert_eq!(merged[1].sql, SEATS_SOLD.many);
        assert_eq!(merged[1].writes.len(), 2);
        assert!(merged[1].check(3).is_ok());
        assert!(merged[1].check(2).is_err());
        // A kind with a write that does not know its count is not checked.
        assert!(merged[2].check(7).is_ok());

        let one_by_one = writes.statements(false);
        assert_eq!(one_by_one.len(), 4);
        assert_eq!(one_by_one[0].sql, SEATS_SOLD.one);
        assert!(one_by_one[0].check(2).is_ok());
        assert!(one_by_one[0].check(1).is_err());
    }

    #[test]
    fn placeholders_shift_past_the_statements_before() {
        assert_eq!(
            shift_placeholders("a = $1 AND b = ANY($2::uuid[]) AND c = $10", 3),
            "a = $4 AND b = ANY($5::uuid[]) AND c = $13"
        );
    }
}
