-- The built-in demo registry as the city's real one looks (issue: districts of Zibo, the three
-- market types), every name marked 演示 (demo). Only rows still carrying the placeholder
-- names of 0002 change: a registry imported with `foodgate markets import` is left alone.
WITH d(k, district) AS (VALUES
    (0, '张店区'), (1, '淄川区'), (2, '博山区'), (3, '周村区'), (4, '临淄区'), (5, '桓台县'),
    (6, '高青县'), (7, '沂源县'), (8, '高新区'), (9, '经开区'), (10, '文昌湖区')),
t(k, type) AS (VALUES (0, '城乡农贸市场'), (1, '便民市场'), (2, '集贸市场')),
m(code, i) AS (SELECT code, CAST(substr(code, 4) AS INTEGER) FROM markets
               WHERE code GLOB 'ZB-[0-9][0-9][0-9][0-9]' AND name = printf('Demo market %d', CAST(substr(code, 4) AS INTEGER)))
UPDATE markets SET
    district = (SELECT district FROM d WHERE k = (m.i - 1) % 11),
    type = (SELECT type FROM t WHERE k = (m.i - 1) % 3),
    name = printf('%s%s%03d（演示）',
                  (SELECT district FROM d WHERE k = (m.i - 1) % 11),
                  (SELECT type FROM t WHERE k = (m.i - 1) % 3), m.i)
FROM m WHERE markets.code = m.code;
