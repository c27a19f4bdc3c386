package command

// Name names a command once: it is the idempotency scope a command id is
// stored under (the commands table's mutation column), the label of the
// command metrics and what the guard is asked about. Each command type
// returns its own, so no caller spells it. The values are stored: never
// change one, or the command ids recorded under it stop matching.
type Name string

// Namer is a command that names itself.
type Namer interface{ CommandName() Name }

// The client commands are named after the GraphQL mutations that send them;
// the saga's after its steps.
func (CreateProduct) CommandName() Name            { return "createProduct" }
func (RenameProduct) CommandName() Name            { return "renameProduct" }
func (ChangeProductDescription) CommandName() Name { return "changeProductDescription" }
func (ChangeProductPrice) CommandName() Name       { return "changeProductPrice" }
func (RestockProduct) CommandName() Name           { return "restockProduct" }
func (DiscontinueProduct) CommandName() Name       { return "discontinueProduct" }
func (ReserveStock) CommandName() Name             { return "reserveStock" }
func (ReleaseStock) CommandName() Name             { return "releaseStock" }
func (AddReview) CommandName() Name                { return "addReview" }
func (RemoveReview) CommandName() Name             { return "removeReview" }
func (PlaceOrder) CommandName() Name               { return "placeOrder" }
func (ConfirmOrder) CommandName() Name             { return "confirmOrder" }
func (RejectOrder) CommandName() Name              { return "rejectOrder" }
func (CancelOrder) CommandName() Name              { return "cancelOrder" }
