package event

// StreamProduct is the stream type of products.
const StreamProduct = "product"

// The product stream's event types, declared to the codec.
var _ = declareStream(StreamProduct,
	typeOf[ProductCreated](), typeOf[ProductRenamed](), typeOf[ProductDescriptionChanged](),
	typeOf[ProductPriceChanged](), typeOf[ProductRestocked](), typeOf[ProductDiscontinued](),
	typeOf[StockReserved](), typeOf[StockReleased](),
)

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

func (ProductCreated) EventType() string            { return "ProductCreated" }
func (ProductRenamed) EventType() string            { return "ProductRenamed" }
func (ProductDescriptionChanged) EventType() string { return "ProductDescriptionChanged" }
func (ProductPriceChanged) EventType() string       { return "ProductPriceChanged" }
func (ProductRestocked) EventType() string          { return "ProductRestocked" }
func (ProductDiscontinued) EventType() string       { return "ProductDiscontinued" }
func (StockReserved) EventType() string             { return "StockReserved" }
func (StockReleased) EventType() string             { return "StockReleased" }
