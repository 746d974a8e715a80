"""Local ProjectX gateway simulator: same REST paths and SignalR hubs, seeded market, paper accounts."""
