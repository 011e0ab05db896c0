-- Bulk inserts and queries for sqlite3 (the realapps test and scripts/bench.sh).
-- The row count comes from the parameter table so one file serves both sizes:
--   sqlite3 DB "create table n(v); insert into n values(ROWS);" ".read sqlite_inserts.sql"
create table items(id integer primary key, name text, grp integer, price real);
begin;
with recursive seq(i) as (select 1 union all select i + 1 from seq where i < (select v from n))
insert into items(name, grp, price) select 'item-' || i, i % 97, (i * 37 % 1000) / 10.0 from seq;
commit;
create index items_grp on items(grp);
select count(*), sum(grp), round(sum(price), 1) from items;
select grp, count(*) from items where grp in (0, 1, 96) group by grp order by grp;
select name from items where id = (select max(id) from items);
