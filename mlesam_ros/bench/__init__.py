"""``mlesam bench``: how long the model and the node's frame path take, and what they hold.

``latency`` (warm-up, percentiles, start-up, peak memory, the optimisation ladder), ``frame``
(a synthetic frame through the node core, whole or per stage), ``commands`` (the CLI). This
package sits above the pipeline it times; nothing below imports it.
"""
