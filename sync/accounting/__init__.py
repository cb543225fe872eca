"""Pure accounting: builds balanced journal lines from mapped documents. No I/O, no ORM."""
