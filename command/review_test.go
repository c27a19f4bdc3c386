package command_test

import (
	"testing"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

func TestDecideReview(t *testing.T) {
	onSale := command.FoldProduct("p1", past(kettle))
	discontinued := command.FoldProduct("p1", past(kettle, event.ProductDiscontinued{}))
	added := event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4, Comment: "Fast."}
	addReview := func(edit func(*command.AddReview)) command.AddReview {
		c := command.AddReview{ProductID: "p1", Author: "Ada", Rating: 4, Comment: "Fast.", Product: onSale}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	productIDNotFound := func(msg string) *refused {
		return &refused{code: splitstream.ENotFound, field: "productId", msg: msg}
	}

	cases := []decideCase[command.ReviewCommand]{
		// AddReview
		{name: "add", when: addReview(nil), then: past(added)},
		{name: "add trims author", when: addReview(func(c *command.AddReview) { c.Author = "  Ada " }), then: past(added)},
		{name: "add without comment", when: addReview(func(c *command.AddReview) { c.Comment = "" }),
			then: past(event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4})},
		{name: "add rating 0", when: addReview(func(c *command.AddReview) { c.Rating = 0 }), err: invalid("rating")},
		{name: "add rating 1", when: addReview(func(c *command.AddReview) { c.Rating = 1 }),
			then: past(event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 1, Comment: "Fast."})},
		{name: "add rating 5", when: addReview(func(c *command.AddReview) { c.Rating = 5 }),
			then: past(event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 5, Comment: "Fast."})},
		{name: "add rating 6", when: addReview(func(c *command.AddReview) { c.Rating = 6 }), err: invalid("rating")},
		{name: "add blank author", when: addReview(func(c *command.AddReview) { c.Author = "  " }), err: invalid("author")},
		{name: "add author 100 runes", when: addReview(func(c *command.AddReview) { c.Author = text(100) }),
			then: past(event.ReviewAdded{ProductID: "p1", Author: text(100), Rating: 4, Comment: "Fast."})},
		{name: "add author 101 runes", when: addReview(func(c *command.AddReview) { c.Author = text(101) }), err: invalid("author")},
		{name: "add comment 4000 runes", when: addReview(func(c *command.AddReview) { c.Comment = text(4000) }),
			then: past(event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4, Comment: text(4000)})},
		{name: "add comment 4001 runes", when: addReview(func(c *command.AddReview) { c.Comment = text(4001) }), err: invalid("comment")},
		{name: "add without product id", when: addReview(func(c *command.AddReview) { c.ProductID = "" }), err: invalid("productId")},
		{name: "add to missing product",
			when: addReview(func(c *command.AddReview) { c.ProductID, c.Product = "p2", command.FoldProduct("p2", nil) }),
			err:  productIDNotFound("product p2 not found")},
		{name: "add to discontinued product", when: addReview(func(c *command.AddReview) { c.Product = discontinued }),
			err: productIDNotFound("product p1 is discontinued")},
		{name: "add existing", given: past(added), when: addReview(nil), err: conflict(1, "review already exists")},
		{name: "add removed", given: past(added, event.ReviewRemoved{ProductID: "p1", Rating: 4}), when: addReview(nil),
			err: conflict(2, "review already exists")},

		// RemoveReview
		{name: "remove", given: past(added), when: command.RemoveReview{},
			then: past(event.ReviewRemoved{ProductID: "p1", Rating: 4})},
		{name: "remove missing", when: command.RemoveReview{}, err: notFound("review r1 not found")},
		{name: "remove twice", given: past(added, event.ReviewRemoved{ProductID: "p1", Rating: 4}),
			when: command.RemoveReview{}, err: notFound("review r1 not found")},
	}
	runDecideCases(t, "r1", cases, command.FoldReview, command.DecideReview)
}

func TestAddReviewWithTheWrongProduct(t *testing.T) {
	c := command.AddReview{ProductID: "p2", Author: "Ada", Rating: 4, Product: command.FoldProduct("p1", past(kettle))}
	_, err := command.DecideReview(command.FoldReview("r1", nil), c)
	if err == nil || splitstream.ErrorCode(err) != splitstream.EInternal {
		t.Fatalf("error = %v, want an internal error: the handler loaded the wrong product", err)
	}
}

func TestFoldReview(t *testing.T) {
	r := command.FoldReview("r1", past(event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4, Comment: "Fast."}))
	want := command.Review{ID: "r1", Version: 1, Exists: true, ProductID: "p1", Author: "Ada", Rating: 4, Comment: "Fast."}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	r = r.Apply(event.ReviewRemoved{ProductID: "p1", Rating: 4})
	want.Version, want.Removed = 2, true
	if r != want {
		t.Fatalf("after removal got %+v, want %+v", r, want)
	}
}
