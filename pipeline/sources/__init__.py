"""Where the data comes from: export readers, profile mapping onto the contract, the demo CRM generator."""
