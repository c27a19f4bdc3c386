package gateway

//go:generate go run ./gen
