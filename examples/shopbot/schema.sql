-- ShopBot's shop database: customers, orders, items, and the returns the
-- bot has started. Created on first run in the data directory.
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL
);
CREATE TABLE orders (
  order_number TEXT PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  placed_on TEXT NOT NULL,      -- YYYY-MM-DD
  delivered_on TEXT NOT NULL    -- YYYY-MM-DD; the return window counts from here
);
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  order_number TEXT NOT NULL REFERENCES orders(order_number),
  sku TEXT NOT NULL,
  name TEXT NOT NULL,
  size TEXT,
  price_cents INTEGER NOT NULL,
  final_sale INTEGER NOT NULL DEFAULT 0   -- 1: cannot be returned
);
-- Written by the bot (never by the model: its SQL tool is read-only).
CREATE TABLE returns (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  order_number TEXT NOT NULL,
  item_ids TEXT NOT NULL,          -- JSON list
  label_id TEXT UNIQUE NOT NULL,
  tracking_number TEXT NOT NULL,
  status TEXT NOT NULL,            -- label_created, emailed
  emailed_to TEXT,
  message_id TEXT
);
