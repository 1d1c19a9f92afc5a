"""Price fetchers: dated list prices from primary sources (Azure Retail Prices API, SkyPilot's catalog CSVs,
RunPod GPU types, Vast.ai offers as a market median, Lambda instance types with the user's key), written to
the store's price history by `refresh`. Each source fails on its own and never touches another's rows."""
