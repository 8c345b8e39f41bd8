-- Seed data. {{TODAY}} is replaced by the configured "today" (YYYY-MM-DD),
-- so the return windows hold the same way on every run.
INSERT INTO customers(id, name, email) VALUES
  (1, 'Alice Moreau', 'alice@example.com'),
  (2, 'Bob Lindqvist', 'bob@example.com'),
  (3, 'Chidi Okafor', 'chidi@example.org'),
  (4, 'Dana Kim', 'dana.kim@example.net');
INSERT INTO orders(order_number, customer_id, placed_on, delivered_on) VALUES
  ('A1001', 1, date('{{TODAY}}', '-14 days'), date('{{TODAY}}', '-10 days')),
  ('A1002', 2, date('{{TODAY}}', '-50 days'), date('{{TODAY}}', '-45 days')),
  ('A1003', 3, date('{{TODAY}}', '-9 days'),  date('{{TODAY}}', '-5 days')),
  ('A1004', 4, date('{{TODAY}}', '-35 days'), date('{{TODAY}}', '-30 days'));
INSERT INTO items(id, order_number, sku, name, size, price_cents, final_sale) VALUES
  (11, 'A1001', 'JNS-SLIM-32', 'Slim jeans, indigo', 'W32 L32', 7900, 0),
  (12, 'A1001', 'TEE-WHT-M',   'Organic T-shirt, white', 'M', 2500, 0),
  (13, 'A1001', 'BLT-BRN',     'Leather belt, brown', '90', 3900, 0),
  (21, 'A1002', 'JNS-STR-34',  'Straight jeans, black', 'W34 L32', 8900, 0),
  (31, 'A1003', 'JNS-WIDE-30', 'Wide jeans, light wash (clearance)', 'W30 L30', 3900, 1),
  (32, 'A1003', 'SWT-GRY-L',   'Wool sweater, grey', 'L', 9900, 0),
  (41, 'A1004', 'JNS-SLIM-30', 'Slim jeans, indigo', 'W30 L32', 7900, 0);
