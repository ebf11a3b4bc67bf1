-- labeling_next: the labeler's live lease in a project, or the next comparison leased to them, with what the
-- page shows, in one call. labeling/services/serving.py documents the rules; its ORM path (SQLite, and
-- LABELING_SQL_FUNCTIONS=0) is the reference the tests hold this function to, statement for statement.
--
-- This is the installed definition. Any change to this file comes with a new migration that re-runs its
-- loader, LoadSQL("serving.sql", digest=...) (labeling/sql/__init__.py); tests/labeling/test_sql.py fails
-- until there is one.

CREATE OR REPLACE FUNCTION labeling_next(
    p_project bigint, p_slug text, p_labeler bigint, p_research boolean, p_now timestamptz, p_lease interval)
RETURNS TABLE (outcome text, project_id bigint, assignment_id bigint, comparison_id bigint, display_order jsonb,
               leased_at timestamptz, expires_at timestamptz, slot integer, sample_id bigint, sample_text text,
               query_id bigint, context text, reference text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    v_project bigint;
    v_k integer;
    v_share double precision;
    v_lease bigint;
    v_comparison bigint;
    v_pools boolean[];
    v_first boolean;
    v_wait boolean;
    v_calibration boolean;
    v_order jsonb;
    r record;
BEGIN
    -- The project: by id (the service was given one) or by slug among active projects (the API).
    IF p_project IS NULL THEN
        SELECT p.id, p.k, p.calibration_share INTO v_project, v_k, v_share
        FROM labeling_project p WHERE p.slug = p_slug AND p.is_active;
    ELSE
        SELECT p.id, p.k, p.calibration_share INTO v_project, v_k, v_share FROM labeling_project p WHERE p.id = p_project;
    END IF;
    IF v_project IS NULL THEN
        RETURN QUERY SELECT 'no_project'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb,
            NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::bigint, NULL::text, NULL::bigint, NULL::text,
            NULL::text;
        RETURN;
    END IF;

    -- One lease at a time per labeler (double clicks, client retries).
    PERFORM 1 FROM auth_user u WHERE u.id = p_labeler FOR NO KEY UPDATE;

    -- Leases past their expiry give their slots back (in comparison order, as assignments_expire).
    IF EXISTS (SELECT 1 FROM labeling_assignment e JOIN labeling_comparison ec ON ec.id = e.comparison_id
               WHERE e.state = 'leased' AND e.expires_at <= p_now AND ec.project_id = v_project) THEN
        FOR r IN
            WITH expired AS (
                SELECT e.id, e.comparison_id FROM labeling_assignment e JOIN labeling_comparison ec ON ec.id = e.comparison_id
                WHERE e.state = 'leased' AND e.expires_at <= p_now AND ec.project_id = v_project
                LIMIT 1000 FOR UPDATE OF e SKIP LOCKED
            ), marked AS (
                UPDATE labeling_assignment x SET state = 'expired' FROM expired WHERE x.id = expired.id
                RETURNING x.comparison_id
            )
            SELECT m.comparison_id AS id, count(*) AS n FROM marked m GROUP BY m.comparison_id ORDER BY m.comparison_id
        LOOP
            UPDATE labeling_comparison c SET open_slots = c.open_slots + r.n WHERE c.id = r.id;
        END LOOP;
    END IF;

    -- The labeler's live lease in the project comes back (a reload shows the same item).
    SELECT a.id INTO v_lease FROM labeling_assignment a JOIN labeling_comparison c ON c.id = a.comparison_id
    WHERE a.labeler_id = p_labeler AND c.project_id = v_project AND a.state = 'leased' AND a.expires_at > p_now
    ORDER BY a.leased_at LIMIT 1;

    IF v_lease IS NULL THEN
        IF p_research THEN
            v_pools := ARRAY[true, false];
        ELSE
            v_first := random() < v_share;
            v_pools := ARRAY[v_first, NOT v_first];
        END IF;
        -- SKIP LOCKED first; only when that finds nothing, wait for rows another transaction holds.
        <<pick>>
        FOREACH v_wait IN ARRAY ARRAY[false, true] LOOP
            FOREACH v_calibration IN ARRAY v_pools LOOP
                -- Each attempt is a subtransaction: a row it locked that then failed PostgreSQL's
                -- recheck (its last slot taken meanwhile) stays locked until the attempt ends, and an
                -- attempt that finds nothing rolls back, so a transaction never waits for a row while
                -- holding such locks (two pools visited in opposite orders deadlocked that way).
                BEGIN
                    IF v_wait THEN
                        SELECT c.id INTO v_comparison FROM labeling_comparison c
                        WHERE c.project_id = v_project AND c.status = 'active' AND c.is_calibration = v_calibration
                          AND c.open_slots > 0
                          AND NOT EXISTS (SELECT 1 FROM labeling_assignment a
                                          WHERE a.comparison_id = c.id AND a.labeler_id = p_labeler)
                        ORDER BY c.id LIMIT 1 FOR UPDATE OF c;
                    ELSE
                        SELECT c.id INTO v_comparison FROM labeling_comparison c
                        WHERE c.project_id = v_project AND c.status = 'active' AND c.is_calibration = v_calibration
                          AND c.open_slots > 0
                          AND NOT EXISTS (SELECT 1 FROM labeling_assignment a
                                          WHERE a.comparison_id = c.id AND a.labeler_id = p_labeler)
                        ORDER BY c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED;
                    END IF;
                    IF v_comparison IS NULL THEN
                        RAISE EXCEPTION USING ERRCODE = 'no_data_found';
                    END IF;
                EXCEPTION WHEN no_data_found THEN
                    v_comparison := NULL;
                END;
                EXIT pick WHEN v_comparison IS NOT NULL;
            END LOOP;
        END LOOP;
        IF v_comparison IS NULL THEN
            RETURN QUERY SELECT 'none'::text, v_project, NULL::bigint, NULL::bigint, NULL::jsonb,
                NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::bigint, NULL::text, NULL::bigint,
                NULL::text, NULL::text;
            RETURN;
        END IF;
        UPDATE labeling_comparison c SET open_slots = c.open_slots - 1 WHERE c.id = v_comparison;
        SELECT jsonb_agg(i ORDER BY random()) INTO v_order FROM generate_series(0, v_k - 1) AS i;
        INSERT INTO labeling_assignment (comparison_id, labeler_id, display_order, leased_at, expires_at, state)
        VALUES (v_comparison, p_labeler, v_order, p_now, p_now + p_lease, 'leased')
        RETURNING id INTO v_lease;
        outcome := 'leased';
    ELSE
        outcome := 'live';
    END IF;

    -- The lease with what the page shows: its comparison's samples and their query.
    RETURN QUERY
    SELECT outcome, v_project, a.id, a.comparison_id, a.display_order, a.leased_at, a.expires_at,
           cs.position::integer, s.id, s.text, q.id, q.context, q.reference
    FROM labeling_assignment a
    JOIN labeling_comparisonsample cs ON cs.comparison_id = a.comparison_id
    JOIN labeling_sample s ON s.id = cs.sample_id
    JOIN labeling_query q ON q.id = s.query_id
    WHERE a.id = v_lease;
END
$fn$;
