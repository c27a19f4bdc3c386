package event

// StreamOrder is the stream type of orders.
const StreamOrder = "order"

// The order stream's event types, declared to the codec.
var _ = declareStream(StreamOrder,
	typeOf[OrderPlaced](), typeOf[OrderConfirmed](), typeOf[OrderRejected](), typeOf[OrderCancelled](),
)

// OrderPlaced holds prices as they were when the order was placed.
type OrderPlaced struct {
	CustomerID string      `json:"customerId"`
	Lines      []OrderLine `json:"lines"`
	TotalCents int64       `json:"totalCents"`
	Currency   string      `json:"currency"`
}

type OrderLine struct {
	ProductID      string `json:"productId"`
	ProductName    string `json:"productName"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

type OrderConfirmed struct{}

type OrderRejected struct {
	Reason string `json:"reason"`
}

type OrderCancelled struct {
	Reason string `json:"reason"`
}

func (OrderPlaced) EventType() string    { return "OrderPlaced" }
func (OrderConfirmed) EventType() string { return "OrderConfirmed" }
func (OrderRejected) EventType() string  { return "OrderRejected" }
func (OrderCancelled) EventType() string { return "OrderCancelled" }
