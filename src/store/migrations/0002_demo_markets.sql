-- The built-in registry (SPEC "Command line", serve): demo markets ZB-0001 … ZB-0484, quota 10.
-- `foodgate markets import` replaces names and quotas later.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 484)
INSERT OR IGNORE INTO markets (code, name, district, type, quota, updated_at)
SELECT printf('ZB-%04d', i), printf('Demo market %d', i), printf('District %d', (i - 1) % 16 + 1),
       CASE i % 3 WHEN 0 THEN 'farmers' WHEN 1 THEN 'convenience' ELSE 'rural_fair' END,
       10, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
FROM n;
