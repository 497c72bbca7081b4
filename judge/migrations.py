"""Ordered, named schema migrations for the DuckDB store.

Append new migrations at the end; never edit one that has shipped. JSON is stored as VARCHAR
so that no DuckDB extension (which might need a download) is ever required.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_initial",
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            dataset VARCHAR NOT NULL,
            backend VARCHAR NOT NULL,
            protocol VARCHAR NOT NULL,
            rubric_hash VARCHAR NOT NULL,
            spec VARCHAR NOT NULL,          -- JSON: the full judge configuration
            spec_hash VARCHAR NOT NULL,
            seed BIGINT,
            status VARCHAR NOT NULL         -- running | finished | failed
        );
        CREATE TABLE rubrics (
            rubric_hash VARCHAR PRIMARY KEY,
            rubric_id VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            body VARCHAR NOT NULL           -- canonical JSON
        );
        CREATE TABLE items (
            dataset VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,
            prompt VARCHAR NOT NULL,
            response VARCHAR,
            response_a VARCHAR,
            response_b VARCHAR,
            reference VARCHAR,
            meta VARCHAR NOT NULL,          -- JSON object
            PRIMARY KEY (dataset, item_id)
        );
        CREATE TABLE calls (
            run_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            "order" VARCHAR NOT NULL,       -- ab | ba | '' (pointwise)
            sample INTEGER NOT NULL,
            attempt INTEGER NOT NULL,       -- 0 first ask, 1 re-ask after a parse failure
            request_hash VARCHAR NOT NULL,
            raw_text VARCHAR,
            parse_status VARCHAR NOT NULL,  -- ok | parse_failed | error
            parse_reason VARCHAR,
            parsed VARCHAR,                 -- JSON, in presented order
            value VARCHAR,                  -- JSON, mapped back to the original order
            logprobs VARCHAR,               -- JSON
            tokens_in INTEGER,
            tokens_out INTEGER,
            cost_usd DOUBLE,
            latency_s DOUBLE,
            retries INTEGER NOT NULL,
            error VARCHAR,
            error_kind VARCHAR,
            cache_hit BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, item_id, "order", sample, attempt)
        );
        CREATE TABLE verdicts (
            run_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL,        -- scored | unscored
            reason VARCHAR,
            score DOUBLE,                   -- pointwise score, or preference for A in [0, 1]
            winner VARCHAR,                 -- A | B | tie (pairwise)
            criteria VARCHAR,               -- JSON: per-criterion aggregated values
            confidence DOUBLE,
            position_conflict BOOLEAN,
            bpde_entropy DOUBLE,
            n_calls INTEGER NOT NULL,
            n_parsed INTEGER NOT NULL,
            details VARCHAR,                -- JSON: per-order winners, logprob score, ...
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, item_id)
        );
        CREATE TABLE labels (
            dataset VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            annotator VARCHAR NOT NULL,
            criterion VARCHAR NOT NULL,     -- '' for the overall label
            value VARCHAR NOT NULL,         -- canonical value as text
            value_num DOUBLE,               -- numeric value when the scale is numeric
            source VARCHAR,
            imported_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset, item_id, annotator, criterion)
        );
        CREATE TABLE models (
            model_id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            spec VARCHAR NOT NULL,
            rubric_hash VARCHAR,
            teacher_run VARCHAR,
            data_hash VARCHAR,
            versions VARCHAR NOT NULL,
            metrics VARCHAR NOT NULL,
            blob BLOB NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0002_request_cache",
        """
        CREATE TABLE request_cache (
            request_hash VARCHAR PRIMARY KEY,
            backend VARCHAR NOT NULL,
            completion VARCHAR NOT NULL,    -- JSON: text, logprobs, tokens, finish reason
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0003_dynamic_rubrics",
        """
        CREATE TABLE dynamic_rubrics (
            prompt_hash VARCHAR PRIMARY KEY,  -- SHA-256 of prompt + reference
            rubric_hash VARCHAR NOT NULL,     -- the current version, also in `rubrics`
            groups_seen INTEGER NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0004_api_keys",
        """
        CREATE TABLE api_keys (
            key_id VARCHAR PRIMARY KEY,       -- the public prefix shown in logs
            key_hash VARCHAR NOT NULL,        -- SHA-256 of the whole key; the key itself is never stored
            name VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked BOOLEAN NOT NULL
        );
        """,
    ),
    Migration(
        "0005_verdict_rubric_and_rewards",
        """
        ALTER TABLE verdicts ADD COLUMN rubric_hash VARCHAR;  -- the exact rubric judged under
        CREATE TABLE rewards (
            run_id VARCHAR NOT NULL,          -- the scoring run that holds the verdict
            rollout INTEGER NOT NULL,         -- position in the batch the trainer sent
            item_id VARCHAR NOT NULL,         -- the verdict this reward came from
            group_key VARCHAR NOT NULL,       -- prompt + reference hash: the GRPO group
            rubric_hash VARCHAR,              -- the rubric (after pruning) the reward used
            raw_score DOUBLE,                 -- the rubric's aggregate before normalization
            normalization VARCHAR NOT NULL,   -- none | group
            value DOUBLE,                     -- the reward handed to the trainer
            status VARCHAR NOT NULL,          -- scored | unscored
            reason VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, rollout)
        );
        """,
    ),
    Migration(
        "0006_runs_without_one_rubric",
        """
        -- A run whose items each carry their own rubric (a reward batch) has no run-level
        -- rubric; every verdict names the rubric it was judged under.
        ALTER TABLE runs ALTER COLUMN rubric_hash DROP NOT NULL;
        """,
    ),
    Migration(
        "0007_service_state",
        """
        -- Rubrics posted to the service, scoped by the API key that posted them; the body
        -- lives in `rubrics` under its hash.
        CREATE TABLE posted_rubrics (
            owner VARCHAR NOT NULL,           -- the API key id (or 'local' without keys)
            rubric_id VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            rubric_hash VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (owner, rubric_id, version)
        );
        -- An admin key may create, list and revoke keys through the running service.
        ALTER TABLE api_keys ADD COLUMN admin BOOLEAN DEFAULT false;
        -- Background runs of the service, so they survive a restart and are resumed.
        CREATE TABLE jobs (
            run_id VARCHAR PRIMARY KEY,
            owner VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- queued | running | finished | failed
            request VARCHAR NOT NULL,         -- JSON: rubric hash, model, options, dataset, item ids
            n_items INTEGER NOT NULL,
            error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0008_item_rubrics_and_transcripts",
        """
        -- An item's own criteria (JSON list: id, description, points, tags), judged instead of
        -- the run's rubric for that item (HealthBench-style per-conversation rubrics).
        ALTER TABLE items ADD COLUMN rubric VARCHAR;
        -- Conversations (OpenAI chat messages) and agent trajectories (steps), as JSON, and
        -- which part of a conversation is judged.
        ALTER TABLE items ADD COLUMN messages VARCHAR;
        ALTER TABLE items ADD COLUMN trajectory VARCHAR;
        ALTER TABLE items ADD COLUMN scope VARCHAR;
        """,
    ),
    Migration(
        "0009_service_requests",
        """
        -- One row per request the HTTP service answered from a standing run (one run per
        -- owner, judge and rubric): which items it asked about, written in the same
        -- transaction as their calls and verdicts.
        CREATE TABLE service_requests (
            request_id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            owner VARCHAR NOT NULL,
            item_ids VARCHAR NOT NULL,        -- JSON list, in the request's order
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0010_provider_batches",
        """
        -- A run's calls sent through a provider's batch API (OpenAI Batch, Anthropic Message
        -- Batches). Every batch's row is written before any is submitted (pending), marked
        -- submitting just before its submission and given the provider's batch id as soon
        -- as it is known, so a resumed run never submits a batch twice.
        CREATE TABLE batches (
            token VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,        -- openai | anthropic
            batch_id VARCHAR,
            n_requests INTEGER NOT NULL,
            requests VARCHAR NOT NULL,        -- JSON list of the request hashes (custom ids)
            status VARCHAR NOT NULL,          -- pending | submitting | submitted | downloaded | failed
            error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        "0011_cache_points_at_calls",
        """
        -- A cache entry for a completion stored as a call names that call instead of
        -- holding its text again: its completion JSON then lacks "text", which the call's
        -- raw_text supplies (each completion written once).
        ALTER TABLE request_cache ADD COLUMN call_key VARCHAR;  -- JSON [run, item, order, sample, attempt]
        """,
    ),
)
