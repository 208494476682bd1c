-- The part of Kunlun's metadata database (kunlun_metadata_db) that node discovery reads.
-- Table and column names follow Kunlun's own meta schema (dump of Kunlun_Metadata_DB in
-- zettadb/kunlun); columns node-mgr never reads are trimmed or given defaults so tests can seed
-- rows with a few values. Runs on MariaDB 10.11 and MySQL 8.

CREATE DATABASE IF NOT EXISTS kunlun_metadata_db;
USE kunlun_metadata_db;

-- A Kunlun cluster: its computer nodes and storage shards point to it by db_cluster_id.
CREATE TABLE db_clusters (
  id int unsigned NOT NULL AUTO_INCREMENT,
  name varchar(120) NOT NULL,
  owner varchar(120) NOT NULL DEFAULT 'abc',
  ddl_log_tblname varchar(120) NOT NULL DEFAULT '',
  when_created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  business varchar(120) NOT NULL DEFAULT '',
  memo text,
  ha_mode enum('no_rep','mgr','rbr') NOT NULL DEFAULT 'rbr',
  PRIMARY KEY (id),
  UNIQUE KEY name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A storage shard of a cluster; its replicas are rows of shard_nodes.
CREATE TABLE shards (
  id int unsigned NOT NULL AUTO_INCREMENT,
  name varchar(64) NOT NULL,
  when_created timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  num_nodes smallint unsigned NOT NULL DEFAULT 1,
  space_volumn bigint unsigned NOT NULL DEFAULT 0,
  num_tablets int unsigned NOT NULL DEFAULT 0,
  db_cluster_id int unsigned NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY name (db_cluster_id, name),
  FOREIGN KEY (db_cluster_id) REFERENCES db_clusters (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Storage nodes (MySQL-family servers), one row per replica of a shard.
CREATE TABLE shard_nodes (
  id int unsigned NOT NULL AUTO_INCREMENT,
  ro_weight smallint DEFAULT 0,
  hostaddr varchar(8192) NOT NULL,
  port smallint unsigned NOT NULL,
  user_name varchar(64) NOT NULL,
  passwd varchar(120) NOT NULL,
  shard_id int unsigned NOT NULL,
  db_cluster_id int unsigned NOT NULL,
  svr_node_id int unsigned NOT NULL DEFAULT 0,
  when_created timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  master_priority smallint NOT NULL DEFAULT 1,
  status enum('creating','inactive','active') DEFAULT 'active',
  PRIMARY KEY (id),
  UNIQUE KEY hostaddr_port_svrnodeid_uniq (hostaddr(256), port, svr_node_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The metadata cluster's own nodes (MySQL-family servers).
CREATE TABLE meta_db_nodes (
  id bigint unsigned NOT NULL AUTO_INCREMENT,
  hostaddr varchar(8192) NOT NULL,
  port smallint unsigned NOT NULL,
  user_name varchar(64) NOT NULL,
  passwd varchar(120) NOT NULL,
  UNIQUE KEY id (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Kunlun allocates computer node ids from this sequence table.
CREATE TABLE comp_nodes_id_seq (
  id int PRIMARY KEY AUTO_INCREMENT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Computer nodes (PostgreSQL-based servers) of a cluster.
CREATE TABLE comp_nodes (
  id int unsigned NOT NULL,
  name varchar(64) NOT NULL,
  hostaddr varchar(8192) NOT NULL,
  port smallint unsigned NOT NULL,
  db_cluster_id int unsigned NOT NULL,
  when_created timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  user_name varchar(64) NOT NULL,
  passwd varchar(120) NOT NULL,
  status enum('creating','inactive','active') DEFAULT 'active',
  PRIMARY KEY (db_cluster_id, id),
  UNIQUE KEY cluster_id_name (db_cluster_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
