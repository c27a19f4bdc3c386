package event

// Product stream.

type ProductCreated struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	PriceCents  int64  `json:"priceCents"`
	Currency    string `json:"currency"`
	Stock       int    `json:"stock"`
}

type ProductRenamed struct {
	Name string `json:"name"`
}

type ProductDescriptionChanged struct {
	Description string `json:"description"`
}

type ProductPriceChanged struct {
	PriceCents int64 `json:"priceCents"`
}

// ProductRestocked carries the stock after, so a projector needs no arithmetic.
type ProductRestocked struct {
	Quantity int `json:"quantity"`
	Stock    int `json:"stock"`
}

type ProductDiscontinued struct{}

// StockReserved holds Quantity for an order; Stock is the stock after.
type StockReserved struct {
	OrderID  string `json:"orderId"`
	Quantity int    `json:"quantity"`
	Stock    int    `json:"stock"`
}

// StockReleased returns an order's reservation; Stock is the stock after.
type StockReleased struct {
	OrderID  string `json:"orderId"`
	Quantity int    `json:"quantity"`
	Stock    int    `json:"stock"`
}

// Review stream.

type ReviewAdded struct {
	ProductID string `json:"productId"`
	Author    string `json:"author"`
	Rating    int    `json:"rating"`
	Comment   string `json:"comment"`
}

// ReviewRemoved carries the rating so a projector can undo it exactly.
type ReviewRemoved struct {
	ProductID string `json:"productId"`
	Rating    int    `json:"rating"`
}

// Order stream.

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

func (ProductCreated) EventType() string            { return "ProductCreated" }
func (ProductRenamed) EventType() string            { return "ProductRenamed" }
func (ProductDescriptionChanged) EventType() string { return "ProductDescriptionChanged" }
func (ProductPriceChanged) EventType() string       { return "ProductPriceChanged" }
func (ProductRestocked) EventType() string          { return "ProductRestocked" }
func (ProductDiscontinued) EventType() string       { return "ProductDiscontinued" }
func (StockReserved) EventType() string             { return "StockReserved" }
func (StockReleased) EventType() string             { return "StockReleased" }
func (ReviewAdded) EventType() string               { return "ReviewAdded" }
func (ReviewRemoved) EventType() string             { return "ReviewRemoved" }
func (OrderPlaced) EventType() string               { return "OrderPlaced" }
func (OrderConfirmed) EventType() string            { return "OrderConfirmed" }
func (OrderRejected) EventType() string             { return "OrderRejected" }
func (OrderCancelled) EventType() string            { return "OrderCancelled" }
