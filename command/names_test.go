package command_test

import (
	"testing"

	"github.com/splitstream/splitstream/command"
)

// storedNames are the names rows in the commands table carry today: a
// command's name is its idempotency scope, so changing one would make a
// retried command id miss its record (or claim another command's).
var storedNames = map[command.Name]command.Namer{
	"createProduct":            command.CreateProduct{},
	"renameProduct":            command.RenameProduct{},
	"changeProductDescription": command.ChangeProductDescription{},
	"changeProductPrice":       command.ChangeProductPrice{},
	"restockProduct":           command.RestockProduct{},
	"discontinueProduct":       command.DiscontinueProduct{},
	"reserveStock":             command.ReserveStock{},
	"releaseStock":             command.ReleaseStock{},
	"addReview":                command.AddReview{},
	"removeReview":             command.RemoveReview{},
	"placeOrder":               command.PlaceOrder{},
	"confirmOrder":             command.ConfirmOrder{},
	"rejectOrder":              command.RejectOrder{},
	"cancelOrder":              command.CancelOrder{},
}

func TestCommandNamesAreTheStoredOnes(t *testing.T) {
	for want, c := range storedNames {
		if got := c.CommandName(); got != want {
			t.Errorf("%T names itself %q; rows are stored under %q", c, got, want)
		}
	}
}
