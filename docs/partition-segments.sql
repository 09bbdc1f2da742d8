-- Opt-in: partition the point store's `segments` table by segment start time (PostgreSQL 11+).
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/partition-segments.sql
--
-- Run it once, with every server stopped (it holds an exclusive lock while it copies the table),
-- and take a backup first. It turns `segments` into a table partitioned by RANGE (ts_min), one
-- partition per calendar month (UTC) plus a DEFAULT partition for stray times, and installs
-- iotile_segment_partitions(months_ahead), which a monthly cron job calls to add the coming months:
--
--   psql "$DATABASE_URL" -c "SELECT iotile_segment_partitions(3)"
--
-- Why and what changes: docs/deploy.md, "Partitioning the point store by time".

BEGIN;

LOCK TABLE segments IN ACCESS EXCLUSIVE MODE;
ALTER TABLE segments RENAME TO segments_unpartitioned;

CREATE TABLE segments (LIKE segments_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (ts_min);
-- The id sequence must outlive the old table.
ALTER SEQUENCE IF EXISTS segments_id_seq OWNED BY segments.id;

-- Month partitions from the month of `since` (microseconds; default: this month) to `months_ahead`
-- months from now; months that already have one are skipped. Returns how many it made.
CREATE OR REPLACE FUNCTION iotile_segment_partitions(months_ahead integer DEFAULT 3, since bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', coalesce(to_timestamp(since / 1e6), now()) AT TIME ZONE 'UTC');
    last date := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead);
    made integer := 0;
    name text;
BEGIN
    WHILE month <= last LOOP
        name := format('segments_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF segments FOR VALUES FROM (%s) TO (%s)',
                name,
                (extract(epoch FROM month::timestamp AT TIME ZONE 'UTC') * 1000000)::bigint,
                (extract(epoch FROM (month + interval '1 month')::timestamp AT TIME ZONE 'UTC') * 1000000)::bigint);
            made := made + 1;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN made;
END $$;

-- Stray times (before 2000, or beyond the months made) land in the default partition.
CREATE TABLE segments_default PARTITION OF segments DEFAULT;
SELECT iotile_segment_partitions(
    3, (SELECT min(ts_min) FROM segments_unpartitioned WHERE ts_min >= 946684800000000));

INSERT INTO segments SELECT * FROM segments_unpartitioned;
DROP TABLE segments_unpartitioned;

-- Keys and indexes on the parent apply to every partition (and to partitions made later).
-- A partitioned table's primary key must contain the partition key.
ALTER TABLE segments ADD CONSTRAINT pk_segments PRIMARY KEY (id, ts_min);
ALTER TABLE segments ADD CONSTRAINT fk_segments_stream_pk_streams
    FOREIGN KEY (stream_pk) REFERENCES streams (pk) ON DELETE CASCADE;
CREATE INDEX ix_segments_stream_ts ON segments (stream_pk, ts_min);
CREATE INDEX ix_segments_stream_ts_max ON segments (stream_pk, ts_max);
CREATE INDEX ix_segments_id ON segments (id_min, id_max);

COMMIT;

ANALYZE segments;
