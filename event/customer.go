package event

// StreamCustomer is the stream type of customers; a customer's stream id
// is its customer id (the JWT sub of the customer's tokens).
const StreamCustomer = "customer"

// The customer stream's event types, declared to the codec.
var _ = declareStream(StreamCustomer,
	typeOf[CustomerRegistered](), typeOf[CustomerRenamed](), typeOf[CustomerAddressChanged](),
)

type CustomerRegistered struct {
	DisplayName     string `json:"displayName"`
	Email           string `json:"email"`
	ShippingAddress string `json:"shippingAddress"`
}

type CustomerRenamed struct {
	DisplayName string `json:"displayName"`
}

type CustomerAddressChanged struct {
	ShippingAddress string `json:"shippingAddress"`
}

func (CustomerRegistered) EventType() string     { return "CustomerRegistered" }
func (CustomerRenamed) EventType() string        { return "CustomerRenamed" }
func (CustomerAddressChanged) EventType() string { return "CustomerAddressChanged" }
