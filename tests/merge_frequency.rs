//! Merge confidence weighs what the store's own table says about the values two records share:
//! proposed through the real binary into a store with a table of residents, where street number
//! `1` is on one record in ten and a social security number on one record only.

mod common;

use common::*;

/// A store whose `residents` table holds 600 people: street number `1` on every tenth, a
/// handful of surnames and suburbs for most, a unique social security number each.
fn residents() -> Env {
    residents_of(600)
}

/// [`residents`] with `n` people.
fn residents_of(n: usize) -> Env {
    let env = Env::new();
    {
        let conn = rusqlite::Connection::open(env.db()).unwrap();
        conn.execute_batch(
            "CREATE TABLE residents (rec_id TEXT PRIMARY KEY, given_name TEXT, surname TEXT,
               street_number TEXT, address_1 TEXT, suburb TEXT, postcode TEXT, state TEXT,
               date_of_birth TEXT, soc_sec_id TEXT)",
        )
        .unwrap();
        let given = [
            "Jack", "Emily", "Thomas", "Chloe", "Joshua", "Olivia", "Liam", "Ella",
        ];
        let surnames = ["Smith", "Jones", "Webb", "Brown", "Wilson", "Taylor"];
        let suburbs = [
            ("Blacktown", "2148", "nsw"),
            ("Geelong", "3220", "vic"),
            ("Cairns", "4870", "qld"),
        ];
        let streets = [
            "Main Street",
            "Station Road",
            "Wattle Crescent",
            "Banksia Way",
        ];
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..n {
            let (suburb, postcode, state) = suburbs[i % 3];
            let number = if i % 10 == 0 {
                "1".to_owned()
            } else {
                (2 + i % 97).to_string()
            };
            conn.execute(
                "INSERT INTO residents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    format!("r-{i}"),
                    given[i % given.len()],
                    surnames[i % surnames.len()],
                    number,
                    streets[i % streets.len()],
                    suburb,
                    postcode,
                    state,
                    format!("19{:02}{:02}{:02}", 30 + i % 70, 1 + i % 12, 1 + i % 28),
                    format!("{}", 1_000_003 + i * 7919),
                ],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO residents VALUES
               ('kyle', 'Kyle', 'Webb', '1', 'Kurrajong Avenue', 'Blacktown', '2148', 'nsw', '19710312', '5123456'),
               ('kylie', 'Kylie', 'Webb', '1', 'Banksia Way', 'Geelong', '3220', 'vic', '19880724', '8301927'),
               ('rq-1', 'Robert', 'Quennell', '17', 'Jacaranda Close', 'Dubbo', '2830', 'nsw', '19650412', '4417723'),
               ('rq-2', 'Bob', 'Quenell', '17', 'Jacaranda Close', NULL, '2830', 'nsw', '19650412', '4417273');
             COMMIT;",
        )
        .unwrap();
    }
    env.cmd(&["init"]).assert().success();
    env
}

fn confidence(env: &Env, id: &str) -> f64 {
    json_of(&mut env.cmd(&["show", id, "--json"]))["proposal"]["confidence"]
        .as_f64()
        .unwrap()
}

/// Proposes merging Kylie into Kyle Webb (strangers at the common street number `1`) and Bob
/// into Robert Quennell (a duplicate with a surname typo, SSN digits transposed, suburb
/// missing), and checks the first is scored under 0.5 and the second at least 0.8.
fn kyle_and_kylie_apart_robert_and_bob_together(env: &Env) {
    env.propose_rows(
        "m.csv",
        "m-1,dedupe-bot,merge,residents,kylie,,,kyle,0.99,,,\n\
         m-2,dedupe-bot,merge,residents,rq-2,,,rq-1,0.99,,,\n",
    );
    let strangers = confidence(env, "dedupe-bot:m-1");
    assert!(strangers < 0.5, "Kyle and Kylie Webb scored {strangers}");
    let duplicates = confidence(env, "dedupe-bot:m-2");
    assert!(
        duplicates >= 0.8,
        "Robert and Bob Quennell (surname typo, SSN digits transposed, suburb missing) scored {duplicates}"
    );
}

#[test]
fn strangers_sharing_a_common_street_number_are_not_scored_as_duplicates() {
    let env = residents();
    kyle_and_kylie_apart_robert_and_bob_together(&env);
    // `show` says which columns agreed, how common each shared value is, and what it added.
    let (out, _) = ok(env.cmd(&["show", "dedupe-bot:m-1"]));
    assert!(
        out.contains("street_number +0.4 (shared value held by 10% of records)"),
        "{out}"
    );
    assert!(out.contains("surname +"), "{out}");
    assert!(out.contains("date_of_birth -"), "{out}");
}

/// A table larger than what a run samples of it: the shares come from an even sample by rowid,
/// and the common street number still counts for as little.
#[test]
fn in_a_table_larger_than_the_sample_a_shared_value_is_weighed_by_its_share_of_it() {
    let env = residents_of(30_000);
    kyle_and_kylie_apart_robert_and_bob_together(&env);
    let (out, _) = ok(env.cmd(&["show", "dedupe-bot:m-1"]));
    assert!(
        out.contains("street_number +0.3 (shared value held by 10.0% of records)"),
        "{out}"
    );
}

#[test]
fn a_different_birth_date_outweighs_a_matching_name_and_town() {
    let env = residents();
    env.conn()
        .execute_batch(
            "INSERT INTO residents VALUES
               ('ap-1', 'Aurelio', 'Papadakis', '8', 'Ocean Drive', 'Cairns', '4870', 'qld', '19500101', NULL),
               ('ap-2', 'Aurelio', 'Papadakis', NULL, NULL, 'Cairns', '4870', 'qld', '19791123', NULL)",
        )
        .unwrap();
    env.propose_rows(
        "m.csv",
        "m-1,dedupe-bot,merge,residents,ap-2,,,ap-1,0.99,,,\n",
    );
    let c = confidence(&env, "dedupe-bot:m-1");
    assert!(c < 0.5, "namesakes born 29 years apart scored {c}");
}
